package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Serve serves srv on ln with serve (srv.Serve, or a srv.ServeTLS) until
// serving fails or ctx ends. When ctx ends it calls stopping, when set (to
// log), then shuts srv down, letting requests in flight finish within
// timeout, and returns nil once serve has returned. serve closes ln, as
// http.Server.Serve does.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, serve func(net.Listener) error, timeout time.Duration, stopping func()) error {
	done := make(chan error, 1)
	go func() { done <- serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serving on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	if stopping != nil {
		stopping()
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
