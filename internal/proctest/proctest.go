// Package proctest has helpers for tests that run arpcheck as a process
// inside network namespaces and watch it from outside: a buffer the
// process writes while the test reads, a wait for a condition, and HTTP
// requests made from inside a namespace.
package proctest

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/arpcheck/arpcheck/internal/netns"
)

// Buffer is a bytes.Buffer that a running command writes while the test
// reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// WaitFor calls cond every 100 ms until it reports true, and fails the
// test with cond's last word if that takes longer than d.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %v: %s", what, d, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Getter returns a function that makes an HTTP GET from inside ns, as a
// kubelet's probe or Prometheus reaches a daemon on the host network:
// each connection is dialled from a thread in ns, so 127.0.0.1 is ns's
// loopback. It returns the status code and the body.
func Getter(ns *netns.NS) func(url string) (int, string, error) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := ns.Do(func() (err error) {
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
	return func(url string) (int, string, error) {
		resp, err := client.Get(url)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}
}
