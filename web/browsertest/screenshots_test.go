package browsertest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/chromedp/chromedp"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
	"github.com/redrive-go/redrive/web"
)

// TestScreenshots draws the main pages, light and dark, from a seeded,
// test-owned Redis with live traffic for the charts. The PNGs go to
// $REDRIVE_SCREENSHOT_DIR when it is set (the README's come from
// REDRIVE_SCREENSHOT_DIR=../../docs/img), else to a temporary directory.
func TestScreenshots(t *testing.T) {
	ctx := newBrowser(t)
	dir := os.Getenv("REDRIVE_SCREENSHOT_DIR")
	traffic := 4 * time.Second
	if dir == "" {
		dir = t.TempDir()
	} else {
		traffic = 50 * time.Second // enough samples for charts that read well
	}
	server := redistest.StartServer(t, redistest.ServerOptions{})
	client := server.Client(t)
	s := seed(t, client, "")
	c := serve(t, web.Config{Client: client, SampleInterval: time.Second, SampleWindow: time.Minute, ShowPayloads: true})

	// Traffic: orders published at a varying rate; billing reads most of
	// it, shipping reads nothing, so its lag grows.
	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	// The hostile entry is for the escaping tests, not for the README.
	client.XDel(context.Background(), s.OrdersPoison, s.HostileID)
	client.Del(context.Background(), s.HostileTopic)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			burst := 3 + (i/10)%6
			for range burst {
				_ = pub.Publish(s.Orders, message.NewMessage(watermill.NewUUID(), []byte(`{"order":1}`)))
			}
			if i%2 == 0 {
				readAck(client, s.Orders, "billing", int64(burst+1))
				readAck(client, s.Payments, "charge-card", 2)
			}
			_ = pub.Publish(s.Payments, message.NewMessage(watermill.NewUUID(), []byte(`{}`)))
			time.Sleep(200 * time.Millisecond)
		}
	}()
	defer func() {
		close(stop)
		<-done
	}()
	time.Sleep(traffic) // the charts' samples accumulate meanwhile

	pages := []struct{ name, path string }{
		{"overview", "/"},
		{"topic", "/topic?name=" + url.QueryEscape(s.Orders)},
		{"poison", "/poison?stream=" + url.QueryEscape(s.OrdersPoison)},
		{"message", "/message?stream=" + url.QueryEscape(s.OrdersPoison) + "&id=" + s.OrdersPoisonIDs[0] + "&payload=1"},
	}
	for _, dark := range []bool{false, true} {
		scheme := "light"
		if dark {
			scheme = "dark"
		}
		do(t, ctx, "set color scheme", colorScheme(scheme))
		for _, p := range pages {
			do(t, ctx, "open "+p.name, chromedp.Navigate(c.URL+p.path), chromedp.WaitVisible(chromedp.CSS("main")))
			png := get(t, ctx, "screenshot "+p.name, chromedp.FullScreenshot(100))
			name := fmt.Sprintf("console-%s.png", p.name)
			if dark {
				name = fmt.Sprintf("console-%s-dark.png", p.name)
			}
			if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The dry run of "requeue all", with its confirm.
	do(t, ctx, "light", colorScheme("light"), chromedp.Navigate(c.URL+"/poison?stream="+url.QueryEscape(s.OrdersPoison)),
		chromedp.WaitVisible(chromedp.CSS("form.bulk")))
	click(t, ctx, `form.bulk button[value="requeue"]`, "")
	do(t, ctx, "dry run", chromedp.WaitVisible(chromedp.CSS("#confirm")))
	png := get(t, ctx, "screenshot dry run", chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(dir, "console-dry-run.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
}

func readAck(client *redis.Client, topic, group string, n int64) {
	ctx := context.Background()
	res, _ := client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: group + "-1", Streams: []string{topic, ">"}, Count: n, Block: -1}).Result()
	for _, st := range res {
		for _, e := range st.Messages {
			client.XAck(ctx, topic, group, e.ID)
		}
	}
}
