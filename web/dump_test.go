package web

import (
	"os"
	"testing"
)

func TestDumpPages(t *testing.T) {
	c := newConsole(t, nil)
	for name, path := range map[string]string{
		"overview": "/", "topic": "/topic?name=" + q(c.seed.Orders), "poison": "/poison?stream=" + q(c.seed.OrdersPoison),
		"message": "/message?stream=" + q(c.seed.OrdersPoison) + "&id=" + c.seed.HostileID + "&payload=1",
		"notfound": "/nope",
	} {
		status, body := c.get(path)
		t.Logf("%s: %d", name, status)
		os.WriteFile("/tmp/web14-"+name+".html", []byte(body), 0o644)
	}
}
