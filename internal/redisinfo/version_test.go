package redisinfo

import (
	"context"
	"testing"

	"github.com/redrive-go/redrive/internal/redistest"
)

func TestParseVersion(t *testing.T) {
	cases := []struct {
		text         string
		major, minor int
		ok           bool
	}{
		{"7.0.15", 7, 0, true},
		{"6.2", 6, 2, true},
		{"255.255.255", 255, 255, true},
		{"7", 0, 0, false},
		{"x.1.2", 0, 0, false},
		{"7.x.2", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, c := range cases {
		v, ok := ParseVersion(c.text)
		if ok != c.ok || v.Major != c.major || v.Minor != c.minor {
			t.Errorf("ParseVersion(%q) = %+v, %v; want %d.%d, %v", c.text, v, ok, c.major, c.minor, c.ok)
		}
		if ok && v.String() != c.text {
			t.Errorf("ParseVersion(%q).String() = %q", c.text, v.String())
		}
	}
}

func TestVersionAtLeast(t *testing.T) {
	cases := []struct {
		major, minor int
		want         bool
	}{
		{6, 1, true},
		{6, 2, true},
		{6, 3, false},
		{5, 9, true},
		{7, 0, false},
	}
	v := Version{Major: 6, Minor: 2, Text: "6.2.14"}
	for _, c := range cases {
		if got := v.AtLeast(c.major, c.minor); got != c.want {
			t.Errorf("6.2.14 AtLeast(%d, %d) = %v, want %v", c.major, c.minor, got, c.want)
		}
	}
}

func TestServerVersion(t *testing.T) {
	client := redistest.NewClient(t)
	info, err := client.Info(context.Background(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := Field(info, "redis_version")
	v, err := ServerVersion(context.Background(), client)
	if err != nil {
		t.Fatal(err)
	}
	if v.Text != want || v.Major < 6 {
		t.Fatalf("ServerVersion = %+v, INFO says %q", v, want)
	}
}

func TestServerVersionUnreachable(t *testing.T) {
	s := redistest.StartServer(t, redistest.ServerOptions{})
	client := s.Client(t)
	s.Kill()
	if _, err := ServerVersion(context.Background(), client); err == nil {
		t.Fatal("ServerVersion of a killed server: no error")
	}
}
