// A small echo server for the node tests: answers every request with JSON naming the
// pod (POD_NAME, POD_NAMESPACE from the downward API), the method, host, path and
// request headers. /healthz answers "ok". Two client endpoints let the tests look from
// inside a pod, and only at the cluster: /fetch?url=http://NAME.cluster.local/... GETs
// that URL on a fresh connection (cluster DNS, then the ClusterIP through kube-proxy)
// and /resolve?name=NAME looks a name up with the pod's resolver. On SIGTERM it stops accepting and lets
// in-flight requests finish (http.Server.Shutdown), as a well-behaved app does; the
// Deployment's preStop hook gives the endpoint removal time to reach every proxy first.
package main

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// client: no keep-alive, so every fetch is a new connection kube-proxy balances anew.
var client = &http.Client{
	Timeout:   3 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

func fetch(w http.ResponseWriter, r *http.Request) {
	u, err := url.Parse(r.URL.Query().Get("url"))
	// Only plain HTTP to cluster names: the test image is no way out of the cluster.
	if err != nil || u.Scheme != "http" || !strings.HasSuffix(u.Hostname(), ".cluster.local") {
		http.Error(w, "url must be http://NAME.cluster.local/...", http.StatusBadRequest)
		return
	}
	resp, err := client.Get(u.String())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, io.LimitReader(resp.Body, 64<<10))
}

func resolve(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, r.URL.Query().Get("name"))
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	json.NewEncoder(w).Encode(map[string][]string{"addresses": addrs})
}

type reply struct {
	Pod       string              `json:"pod"`
	Namespace string              `json:"namespace"`
	Method    string              `json:"method"`
	Host      string              `json:"host"`
	Path      string              `json:"path"`
	Query     string              `json:"query"`
	Remote    string              `json:"remote"`
	Headers   map[string][]string `json:"headers"`
}

func main() {
	addr := ":" + env("PORT", "8080")
	pod, ns := env("POD_NAME", "unknown"), env("POD_NAMESPACE", "unknown")
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/fetch", fetch)
	mux.HandleFunc("/resolve", resolve)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Echo-Pod", pod)
		json.NewEncoder(w).Encode(reply{
			Pod: pod, Namespace: ns, Method: r.Method, Host: r.Host, Path: r.URL.Path,
			Query: r.URL.RawQuery, Remote: r.RemoteAddr, Headers: r.Header,
		})
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		s := <-sig
		log.Printf("echo %s: %v, draining", pod, s)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		close(done)
	}()
	log.Printf("echo %s/%s listening on %s", ns, pod, addr)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatal(err)
	}
	<-done
	log.Printf("echo %s: stopped", pod)
}

func env(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}
