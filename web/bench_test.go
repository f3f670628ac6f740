package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/consoleseed"
	"github.com/redrive-go/redrive/internal/redistest"
)

// The console's pages on big data, on a test-owned redis-server: the
// overview of 1,000 topics, and pages of a poison stream of 1,000,000
// entries. The aim is under 200 ms a page on the CI machine; the
// benchmarks print their times and assert nothing. Run with
//
//	go test -run '^$' -bench 'Console' -benchtime 20x ./web/
func BenchmarkConsoleOverview1000Topics(b *testing.B) {
	server := redistest.StartServer(b, redistest.ServerOptions{})
	client := server.Client(b)
	ctx := context.Background()
	pipe := client.Pipeline()
	for i := range 1000 {
		topic := fmt.Sprintf("topic-%04d", i)
		pipe.XGroupCreateMkStream(ctx, topic, "workers", "0")
		if i%3 == 0 {
			pipe.XGroupCreateMkStream(ctx, topic, "audit", "0")
		}
		for j := range 20 {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: topic, Values: map[string]any{"payload": fmt.Sprint(j)}})
		}
		if i%50 == 0 {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: redrive.KeysFor(topic).Poison, Values: map[string]any{"payload": "x"}})
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.Fatal(err)
	}
	h := benchHandler(b, client)
	benchPage(b, h, "/", 1000)
}

func BenchmarkConsolePoison1MEntries(b *testing.B) {
	server := redistest.StartServer(b, redistest.ServerOptions{})
	client := server.Client(b)
	ctx := context.Background()
	stream := redrive.KeysFor("orders").Poison
	const entries = 1_000_000
	handlers := []string{"billing", "shipping", "audit", "emails"}
	var ids []string
	for start := 0; start < entries; start += 10_000 {
		pipe := client.Pipeline()
		for i := start; i < start+10_000; i++ {
			fields, _, err := consoleseed.PoisonFields(consoleseed.Poison{Topic: "orders", Handler: handlers[i%4], Reason: "max retries exceeded",
				LastError: "timeout", Payload: `{"order":1}`})
			if err != nil {
				b.Fatal(err)
			}
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: fields})
		}
		cmds, err := pipe.Exec(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if start == entries/2 {
			ids = append(ids, cmds[0].(*redis.StringCmd).Val())
		}
	}
	if n := client.XLen(ctx, stream).Val(); n != entries {
		b.Fatalf("poison stream holds %d entries", n)
	}
	h := benchHandler(b, client)
	s := url.QueryEscape(stream)
	b.Run("first-page", func(b *testing.B) { benchPage(b, h, "/poison?stream="+s, entries) })
	b.Run("middle-page", func(b *testing.B) { benchPage(b, h, "/poison?stream="+s+"&cursor="+ids[0], entries) })
	b.Run("handler-filter", func(b *testing.B) { benchPage(b, h, "/poison?stream="+s+"&handler=emails&order=oldest", entries) })
	b.Run("rare-filter", func(b *testing.B) { benchPage(b, h, "/poison?stream="+s+"&reason=nomatch", entries) })
	b.Run("message", func(b *testing.B) { benchPage(b, h, "/message?stream="+s+"&id="+ids[0], entries) })
}

func benchHandler(b *testing.B, client redis.UniversalClient) http.Handler {
	h, err := NewHandler(Config{Client: client, SampleInterval: time.Hour}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = h.(*Handler).Close() })
	return h
}

// benchPage serves path b.N times and prints the mean time per page.
func benchPage(b *testing.B, h http.Handler, path string, size int) {
	b.Helper()
	if rec := httptestRecorder(h, http.MethodGet, path); rec.Code != http.StatusOK {
		b.Fatalf("GET %s = %d:\n%.500s", path, rec.Code, rec.Body.String())
	}
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		httptestRecorder(h, http.MethodGet, path)
	}
	per := time.Since(start) / time.Duration(b.N)
	b.ReportMetric(float64(per.Microseconds())/1000, "ms/page")
	b.Logf("%s over %d entries: %.1f ms a page (aim: under 200 ms)", path, size, float64(per.Microseconds())/1000)
}
