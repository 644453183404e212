package cli

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, srv, ln, srv.Serve, 10*time.Second, func() { close(stopped) })
	}()

	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello" {
		t.Fatalf("body %q", body)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after a shutdown: %v", err)
	}
	select {
	case <-stopped:
	default:
		t.Fatal("stopping was not called")
	}
}

func TestServeFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	srv := &http.Server{Handler: http.NotFoundHandler()}
	err = Serve(context.Background(), srv, ln, srv.Serve, time.Second, func() { t.Error("stopping called on a failure") })
	if err == nil || !strings.HasPrefix(err.Error(), "serving on "+addr+": ") {
		t.Fatalf("Serve on a closed listener: %v", err)
	}
}
