// Command web mounts redrive's web console in an application's own
// http.ServeMux, beside the application's pages, while a router handles
// orders: one handler fails on some orders (retries, then poison), another
// handles them all, and reminders wait as delayed messages. Open the printed
// URL to see the topics, requeue or purge the poisoned orders, and run a
// reminder now.
//
//	go -C examples run ./web            # serves until Ctrl-C
//	go -C examples run ./web -once      # checks the console answers, then exits
//
// It uses the Redis at REDIS_ADDR (default 127.0.0.1:6379) when one answers,
// else an embedded in-memory Redis.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/examples/internal/exampleredis"
	"github.com/redrive-go/redrive/middleware"
	"github.com/redrive-go/redrive/router"
	"github.com/redrive-go/redrive/web"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve on")
	once := flag.Bool("once", false, "check that the console answers, then exit")
	flag.Parse()
	if *once {
		*listen = "127.0.0.1:0"
	}

	rdb, closeRedis := exampleredis.Connect()
	defer closeRedis()
	prefix := exampleredis.Topic("shop") + "."
	orders, reminders := prefix+"orders", prefix+"reminders"
	defer exampleredis.Cleanup(rdb, orders, "billing", "shipping")
	defer exampleredis.Cleanup(rdb, reminders)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	// The application: billing rejects orders in currency XTS, so they are
	// retried twice and then poisoned; shipping handles everything.
	var poisoned atomic.Int64
	r, err := router.New(router.Config{
		Client: rdb,
		Retry: middleware.RetryConfig{
			MaxRetries: 2, InitialInterval: 500 * time.Millisecond,
			OnPoison: func(middleware.PoisonEvent) { poisoned.Add(1) },
		},
	}, nil)
	if err != nil {
		fail(err)
	}
	_, err = r.AddConsumerHandler("billing", orders, func(msg *message.Message) error {
		if strings.Contains(string(msg.Payload), "XTS") {
			return errors.New(`card processor rejects currency "XTS"`)
		}
		return nil
	})
	if err != nil {
		fail(err)
	}
	if _, err = r.AddConsumerHandler("shipping", orders, func(*message.Message) error { return nil }); err != nil {
		fail(err)
	}
	go func() {
		if err := r.Run(ctx); err != nil {
			fail(err)
		}
	}()
	<-r.Running()
	defer r.Close()

	// The console, mounted under /redrive/ in the application's own mux.
	// In production, put your authentication middleware in front of it.
	console, err := web.NewHandler(web.Config{Client: rdb, TopicMatch: prefix + "*", ShowPayloads: true}, nil)
	if err != nil {
		fail(err)
	}
	defer console.(*web.Handler).Close()
	mux := http.NewServeMux()
	mux.Handle("/redrive/", http.StripPrefix("/redrive", console))
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "The shop. Its redrive console is at /redrive/.")
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fail(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	consoleURL := "http://" + ln.Addr().String() + "/redrive/"
	fmt.Printf("Console: %s\n", consoleURL)

	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: rdb}, nil)
	if err != nil {
		fail(err)
	}
	defer pub.Close()
	publish := func(i int) {
		currency := "EUR"
		if i%4 == 3 {
			currency = "XTS"
		}
		msg := message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprintf(`{"order": %d, "currency": %q}`, i, currency)))
		if err := pub.Publish(orders, msg); err != nil {
			fail(err)
		}
	}
	for i := range 8 {
		publish(i)
	}
	// A reminder now (which makes the reminders stream), two for later.
	for _, d := range []time.Duration{0, 10 * time.Minute, time.Hour} {
		msg := message.NewMessage(watermill.NewUUID(), []byte(`{"remind": "abandoned cart"}`))
		if d > 0 {
			delay.Message(msg, delay.For(d))
		}
		if err := pub.Publish(reminders, msg); err != nil {
			fail(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for poisoned.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Printf("Poisoned so far: %d orders (billing rejected XTS twice more each)\n", poisoned.Load())

	status, body := fetch(consoleURL)
	fmt.Printf("Console overview: HTTP %d, shows %s: %v, shows %s: %v\n", status,
		strings.TrimPrefix(orders, prefix), strings.Contains(body, orders), strings.TrimPrefix(reminders, prefix), strings.Contains(body, reminders))
	if *once {
		fmt.Println("Done: the console is mounted beside the application's pages.")
		return
	}
	fmt.Println("Serving until Ctrl-C; orders keep coming every few seconds.")
	ticker := time.NewTicker(3 * time.Second)
	defer ticker.Stop()
	for i := 8; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			publish(i)
		}
	}
}

func fetch(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		fail(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "web:", err)
	os.Exit(1)
}
