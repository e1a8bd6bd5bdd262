// Package proctest has helpers for tests that run arpcheck as a process
// inside network namespaces and watch it from outside: the program built
// once per test binary, a buffer the process writes while the test
// reads, a wait for a condition, and HTTP requests made from inside a
// namespace.
package proctest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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

// Build is a program that tests build once per test binary, into a
// temporary directory that every user may read and search, so that tests
// can also run it as an unprivileged user. The zero value is ready to
// use; call Remove from TestMain when the tests are done.
type Build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Path returns the path of the program named name, built on the first
// call by build (which writes it to the path it is given); a failed build
// fails t, then and on every later call.
func (b *Build) Path(t testing.TB, name string, build func(path string) error) string {
	t.Helper()
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "arpcheck-test-"); b.err != nil {
			return
		}
		if b.err = os.Chmod(b.dir, 0o755); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, name)
		b.err = build(b.path)
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// Remove removes what Path built, if anything.
func (b *Build) Remove() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// GoBuild runs go build -o path pkg, with -race when race is set (tests
// pass whether they run with the race detector, so that the program is
// checked by it too). pkg is an import path or a directory, resolved from
// the current directory.
func GoBuild(path, pkg string, race bool) error {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		goCmd = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	args := []string{"build", "-o", path}
	if race {
		args = append(args, "-race")
	}
	out, err := exec.Command(goCmd, append(args, pkg)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return nil
}
