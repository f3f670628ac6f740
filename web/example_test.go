package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/web"
)

// The console mounted under /redrive/ in an application's own mux, behind
// the application's authentication.
func ExampleNewHandler() {
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr()})
	defer rdb.Close()
	topic := "shop-orders-" + watermill.NewShortUUID()
	rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: topic, Values: map[string]any{"payload": "{}"}})
	defer rdb.Del(context.Background(), topic)

	// TopicMatch limits the console to the application's topics.
	console, err := web.NewHandler(web.Config{Client: rdb, ReadOnly: true, TopicMatch: "shop-orders-*"}, nil)
	if err != nil {
		panic(err)
	}
	defer console.(io.Closer).Close() // stops the chart sampler

	mux := http.NewServeMux()
	mux.Handle("/redrive/", requireOperator(http.StripPrefix("/redrive", console)))
	app := httptest.NewServer(mux)
	defer app.Close()

	req, _ := http.NewRequest(http.MethodGet, app.URL+"/redrive/", nil)
	req.Header.Set("X-Operator", "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, strings.Contains(string(body), `href="/redrive/topic?name=`+topic+`"`))
	// Output: 200 true
}

// requireOperator stands for the application's own authentication.
func requireOperator(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Operator") == "" {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// redisAddr is the Redis the examples run against: $REDIS_ADDR, or
// 127.0.0.1:6379.
func redisAddr() string {
	if addr := os.Getenv("REDIS_ADDR"); addr != "" {
		return addr
	}
	return "127.0.0.1:6379"
}
