package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Group serves several http.Servers, each on one or more listeners, and
// shuts them all down together. The zero Group is ready to use.
type Group struct {
	servers []*http.Server
	serves  []serving
}

type serving struct {
	srv *http.Server
	ln  net.Listener
	tls bool
}

// Add serves srv on ln, with srv.TLSConfig when useTLS. It sets srv's
// ConnContext to this package's, so that its handlers see the transport and
// the peer of each request. A server given with useTLS should serve no
// other listener, and share its TLSConfig with no other server: net/http
// sets up HTTP/2 for Serve and for ServeTLS separately, and changes the
// TLSConfig as it does.
func (g *Group) Add(srv *http.Server, ln net.Listener, useTLS bool) {
	srv.ConnContext = ConnContext
	known := false
	for _, s := range g.servers {
		known = known || s == srv
	}
	if !known {
		g.servers = append(g.servers, srv)
	}
	g.serves = append(g.serves, serving{srv: srv, ln: ln, tls: useTLS})
}

// Serve serves every listener until ctx ends or one of them fails. Then it
// calls stopping (if not nil) and shuts every server down, giving the
// requests in flight up to timeout. It returns the error that ended the
// serving, or the first error of the shutdown.
func (g *Group) Serve(ctx context.Context, timeout time.Duration, stopping func()) error {
	if len(g.serves) == 0 {
		return errors.New("nothing to serve")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(g.serves))
	var wg sync.WaitGroup
	for _, s := range g.serves {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if s.tls {
				if s.srv.TLSConfig == nil {
					err = errors.New("TLS without a configuration")
				} else {
					err = s.srv.ServeTLS(s.ln, "", "")
				}
			} else {
				err = s.srv.Serve(s.ln)
			}
			if !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("serving on %s: %w", s.ln.Addr(), err)
				cancel()
			}
		}()
	}
	<-ctx.Done()
	var first error
	select {
	case first = <-errs:
	default:
	}
	if stopping != nil {
		stopping()
	}
	sctx, scancel := context.WithTimeout(context.Background(), timeout)
	defer scancel()
	var shutdown sync.WaitGroup
	shutdownErrs := make([]error, len(g.servers))
	for i, srv := range g.servers {
		shutdown.Add(1)
		go func() {
			defer shutdown.Done()
			shutdownErrs[i] = srv.Shutdown(sctx)
		}()
	}
	shutdown.Wait()
	wg.Wait()
	if first != nil {
		return first
	}
	for _, err := range shutdownErrs {
		if err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
	}
	return nil
}

// TLSConfig loads a certificate and key into a server configuration with
// TLS 1.2 at least.
func TLSConfig(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
