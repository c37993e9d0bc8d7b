// Command origin is the docker-compose end-to-end test's stand-in for the
// demo's echo origin image: it answers every request with the request it
// received as JSON (method, uri, host, lower-case headers), on
// 127.0.0.1:$HTTP_PORT, the variable the official image reads. Built
// static (CGO_ENABLED=0) into a FROM scratch image.
package main

import (
	"encoding/json"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	port := os.Getenv("HTTP_PORT")
	if port == "" {
		port = "8000"
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headers := map[string][]string{}
		for k, v := range r.Header {
			headers[strings.ToLower(k)] = v
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"method": r.Method, "uri": r.RequestURI, "host": r.Host, "headers": headers,
		})
	})
	srv := &http.Server{Addr: net.JoinHostPort("127.0.0.1", port), Handler: h, ReadHeaderTimeout: 5 * time.Second}
	log.Printf("echo origin on %s", srv.Addr)
	log.Fatal(srv.ListenAndServe())
}
