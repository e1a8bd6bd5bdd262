package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/arpcheck/arpcheck/internal/netns"
)

// The client's pace: a new connect every dialEvery, each given dialTimeout
// (so a few are in flight at once, and a repair is seen within dialEvery).
// A SYN is retransmitted only after a second, so each attempt sends one.
const (
	dialEvery   = 50 * time.Millisecond
	dialTimeout = 200 * time.Millisecond
)

// client connects from the prober to movedAddr, again and again, and
// remembers when a connect reached which owner.
type client struct {
	ns *netns.NS

	mu      sync.Mutex
	reached map[string]time.Time // banner: the first connect that got it
	tries   int
	changed chan struct{} // closed and replaced when reached changes
}

func newClient(ns *netns.NS) *client {
	return &client{ns: ns, reached: make(map[string]time.Time), changed: make(chan struct{})}
}

// run dials every dialEvery until ctx is done, and returns when every
// attempt has ended.
func (c *client) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(dialEvery)
	defer t.Stop()
	for {
		wg.Go(func() { c.dial(ctx) })
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// dial makes one connect, from a socket created in the prober's
// namespace, and reads the banner.
func (c *client) dial(ctx context.Context) {
	var banner string
	var at time.Time
	err := c.ns.Do(func() error {
		d := net.Dialer{Timeout: dialTimeout}
		conn, err := d.DialContext(ctx, "tcp4", netip.AddrPortFrom(movedAddr, port).String())
		if err != nil {
			return err
		}
		at = time.Now()
		defer conn.Close()
		conn.SetReadDeadline(time.Now().Add(time.Second))
		b, err := io.ReadAll(io.LimitReader(conn, 64))
		banner = strings.TrimSpace(string(b))
		return err
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tries++
	if err != nil || banner == "" {
		return
	}
	if _, ok := c.reached[banner]; !ok {
		c.reached[banner] = at
		close(c.changed)
		c.changed = make(chan struct{})
	}
}

// first returns when a connect first reached the owner with banner, and a
// channel closed when that may have changed.
func (c *client) first(banner string) (time.Time, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reached[banner], c.changed
}

// attempts returns how many connects have ended.
func (c *client) attempts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tries
}

// connectOnce connects until one connect reaches the owner with banner,
// for at most timeout: the kernel learns the entry as any first packet
// makes it.
func connectOnce(ctx context.Context, ns *netns.NS, banner string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := newClient(ns)
	for {
		c.dial(ctx)
		if at, _ := c.first(banner); !at.IsZero() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no TCP connect to %s reached the %s owner within %s", movedAddr, banner, timeout)
		case <-time.After(dialEvery):
		}
	}
}

// observer follows the prober's neighbour entry for movedAddr: it
// subscribes to the kernel's neighbour events and, in case events are
// lost, also reads the entry every observePoll.
type observer struct {
	ns   *netns.NS
	want net.HardwareAddr

	mu      sync.Mutex
	since   time.Time // entries seen before it do not count
	seen    time.Time // when the entry first held want since since
	changed chan struct{}
	done    chan struct{}
	wg      sync.WaitGroup
}

const observePoll = 100 * time.Millisecond

// observe starts an observer of the entry in ns, waiting for it to hold
// want. Stop it with close.
func observe(ns *netns.NS, want net.HardwareAddr) (*observer, error) {
	o := &observer{ns: ns, want: want, changed: make(chan struct{}), done: make(chan struct{})}
	updates := make(chan netlink.NeighUpdate, 256)
	err := ns.Do(func() error {
		// The socket is created on this thread, in ns.
		return netlink.NeighSubscribeWithOptions(updates, o.done, netlink.NeighSubscribeOptions{
			ReceiveBufferSize: 1 << 20,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to the prober's neighbour events: %w", err)
	}
	o.wg.Go(func() {
		for u := range updates {
			if u.Type == unix.RTM_NEWNEIGH {
				o.note(&u.Neigh, time.Now())
			}
		}
	})
	o.wg.Go(func() {
		t := time.NewTicker(observePoll)
		defer t.Stop()
		for {
			select {
			case <-o.done:
				return
			case <-t.C:
			}
			if n, err := ns.Neigh(netns.LANIface, movedAddr); err == nil && n != nil {
				o.note(n, time.Now())
			}
		}
	})
	return o, nil
}

// note takes in the entry n as seen at time at.
func (o *observer) note(n *netlink.Neigh, at time.Time) {
	ip, ok := netip.AddrFromSlice(n.IP)
	if !ok || ip.Unmap() != movedAddr || !bytes.Equal(n.HardwareAddr, o.want) ||
		n.State&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED) != 0 || n.State == netlink.NUD_NONE {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.since.IsZero() || !o.seen.IsZero() && !at.Before(o.seen) {
		return
	}
	o.seen = at
	close(o.changed)
	o.changed = make(chan struct{})
}

// start counts entries from t0 on.
func (o *observer) start(t0 time.Time) {
	o.mu.Lock()
	o.since = t0
	o.mu.Unlock()
}

// first returns when the entry first held the wanted MAC since start, and
// a channel closed when that may have changed.
func (o *observer) first() (time.Time, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.seen, o.changed
}

// close ends the subscription and the reads.
func (o *observer) close() {
	close(o.done)
	o.wg.Wait()
}

// logRecord is a line of `arpcheck watch --log-format json`.
type logRecord struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Msg     string    `json:"msg"`
	IP      string    `json:"ip"`
	Verdict string    `json:"verdict"`
	Action  string    `json:"action"`
	Cause   string    `json:"cause"`
	Reason  string    `json:"reason"`
	line    string
}

// watchProc is `arpcheck watch` running in the prober's namespace, its
// log read as it comes.
type watchProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the log ends

	mu      sync.Mutex
	records []logRecord
	changed chan struct{}
}

// startWatch starts `arpcheck watch` with args in ns. It dies with the
// calling program (Pdeathsig), so it cannot keep ns alive.
func startWatch(ctx context.Context, ns *netns.NS, arpcheck string, args []string) (*watchProc, error) {
	argv := append([]string{"watch", "--log-format", "json", "--log-level", "debug"}, args...)
	cmd := exec.CommandContext(ctx, arpcheck, argv...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	w := &watchProc{cmd: cmd, done: make(chan struct{}), changed: make(chan struct{})}
	if err := ns.Do(cmd.Start); err != nil {
		return nil, fmt.Errorf("start arpcheck watch: %w", err)
	}
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			r := logRecord{line: sc.Text()}
			json.Unmarshal(sc.Bytes(), &r) // a line that is not JSON is kept as it is
			w.mu.Lock()
			w.records = append(w.records, r)
			close(w.changed)
			w.changed = make(chan struct{})
			w.mu.Unlock()
		}
	}()
	return w, nil
}

// find returns the first record from index from on that ok accepts, and
// the index after it; or false, and a channel closed when records come.
func (w *watchProc) find(from int, ok func(logRecord) bool) (logRecord, int, bool, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := from; i < len(w.records); i++ {
		if ok(w.records[i]) {
			return w.records[i], i + 1, true, nil
		}
	}
	return logRecord{}, len(w.records), false, w.changed
}

// waitFor waits up to timeout for a record that ok accepts.
func (w *watchProc) waitFor(ctx context.Context, timeout time.Duration, what string, ok func(logRecord) bool) (logRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for from := 0; ; {
		r, next, found, changed := w.find(from, ok)
		if found {
			return r, nil
		}
		from = next
		select {
		case <-changed:
		case <-w.done:
			return logRecord{}, fmt.Errorf("arpcheck watch ended before %s:\n%s", what, w.log())
		case <-ctx.Done():
			return logRecord{}, fmt.Errorf("no %s from arpcheck watch within %s: %w\n%s", what, timeout, context.Cause(ctx), w.log())
		}
	}
}

// snapshot returns the records so far.
func (w *watchProc) snapshot() []logRecord {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]logRecord(nil), w.records...)
}

// log returns the log so far, as written.
func (w *watchProc) log() string {
	var b strings.Builder
	for _, r := range w.snapshot() {
		b.WriteString(r.line)
		b.WriteByte('\n')
	}
	return b.String()
}

// stop sends SIGTERM and waits for watch to exit; it must exit with
// status 0, as its contract says.
func (w *watchProc) stop() error {
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop arpcheck watch: %w", err)
	}
	err := w.cmd.Wait()
	<-w.done
	if err != nil {
		return fmt.Errorf("arpcheck watch after SIGTERM: %w\n%s", err, w.log())
	}
	return nil
}

// cronRun is one run of `arpcheck repair` by the cron of a run.
type cronRun struct {
	start, end time.Time
	exit       int
	out        string
}

// cron runs `arpcheck repair -q` with args in ns at first, then every
// period, until stop is done, as a cron entry does whose minute happens
// to fall at first; a run under way then finishes (ctx, the program's,
// interrupts it). It returns the runs.
func cron(ctx, stop context.Context, ns *netns.NS, arpcheck string, args []string, first time.Time, period time.Duration) []cronRun {
	var runs []cronRun
	for next := first; ; next = next.Add(period) {
		select {
		case <-stop.Done():
			return runs
		case <-time.After(time.Until(next)):
		}
		cmd := exec.CommandContext(ctx, arpcheck, append([]string{"repair", "-q"}, args...)...)
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = 5 * time.Second
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		r := cronRun{start: time.Now(), exit: -1}
		if err := ns.Do(cmd.Start); err != nil {
			r.out = err.Error()
		} else {
			cmd.Wait()
			r.exit = cmd.ProcessState.ExitCode()
			r.out = out.String()
		}
		r.end = time.Now()
		runs = append(runs, r)
	}
}
