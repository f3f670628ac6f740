package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/web"
)

// The console mounted under /redrive/ in an application's own mux, behind
// the application's authentication.
func ExampleNewHandler() {
	mini, err := miniredis.Run() // or your Redis
	if err != nil {
		panic(err)
	}
	defer mini.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mini.Addr()})
	defer rdb.Close()
	rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: "orders", Values: map[string]any{"payload": "{}"}})

	console, err := web.NewHandler(web.Config{Client: rdb, ReadOnly: true}, nil)
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
	fmt.Println(resp.StatusCode, strings.Contains(string(body), `href="/redrive/topic?name=orders"`))
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
