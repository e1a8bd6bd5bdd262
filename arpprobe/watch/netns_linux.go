package watch

import (
	"errors"
	"fmt"
	"net"
	"runtime"

	vnetns "github.com/vishvananda/netns"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// A Watcher's sockets and subscriptions belong to the network namespace
// it was made in, whichever goroutine opens them later.

// threadNetns opens the network namespace of the calling thread.
func threadNetns() (vnetns.NsHandle, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ns, err := vnetns.Get()
	if err != nil {
		return vnetns.None(), fmt.Errorf("watch: open the current network namespace: %w", err)
	}
	return ns, nil
}

// netnsPin runs functions in the network namespace that the thread
// that made it was in, from any goroutine.
type netnsPin struct{ ns vnetns.NsHandle }

func pinNetns() (*netnsPin, error) {
	ns, err := threadNetns()
	if err != nil {
		return nil, err
	}
	return &netnsPin{ns: ns}, nil
}

func (p *netnsPin) Close() error { return p.ns.Close() }

// do runs fn on the calling goroutine's thread inside the pinned
// namespace: directly if the thread is there already, else switched
// into it and back. If the switch back fails the thread stays locked, so
// that the runtime ends it with the goroutine rather than reuse it.
func (p *netnsPin) do(fn func() error) error {
	runtime.LockOSThread()
	cur, err := vnetns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("watch: open the current network namespace: %w", err)
	}
	defer cur.Close()
	if cur.Equal(p.ns) {
		defer runtime.UnlockOSThread()
		return fn()
	}
	if err := vnetns.Set(p.ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("watch: enter network namespace: %w", err)
	}
	fnErr := fn()
	if err := vnetns.Set(cur); err != nil {
		return errors.Join(fnErr, fmt.Errorf("watch: return to network namespace: %w", err))
	}
	runtime.UnlockOSThread()
	return fnErr
}

// proberConfig returns cfg with Listen and InterfaceByIndex run in the
// pinned namespace, so a socket lands there whatever goroutine opens it.
func (p *netnsPin) proberConfig(cfg arpprobe.ProberConfig) arpprobe.ProberConfig {
	listen, byIndex := cfg.Listen, cfg.InterfaceByIndex
	cfg.Listen = func(ifi *net.Interface) (c arpprobe.FrameConn, err error) {
		err = p.do(func() (err error) {
			c, err = listen(ifi)
			return err
		})
		return c, err
	}
	cfg.InterfaceByIndex = func(i int) (ifi *net.Interface, err error) {
		err = p.do(func() (err error) {
			ifi, err = byIndex(i)
			return err
		})
		return ifi, err
	}
	return cfg
}
