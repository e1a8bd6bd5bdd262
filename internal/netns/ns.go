package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NS is a network namespace made by New. Its methods may be called from
// any goroutine; Close must not run concurrently with the others.
type NS struct {
	fd vnetns.NsHandle
	nl *netlink.Handle // NETLINK_ROUTE socket created inside the namespace

	closeOnce sync.Once
	closeErr  error
}

// New creates an unnamed network namespace with its loopback interface up
// and IPv6 disabled (no DAD or MLD traffic when links come up). It blocks
// for the few system calls this takes and needs CAP_SYS_ADMIN. The caller
// must Close the NS.
func New() (*NS, error) {
	fd, err := create()
	if err != nil {
		return nil, err
	}
	ns := &NS{fd: fd}
	if err := ns.setup(); err != nil {
		return nil, errors.Join(err, ns.Close())
	}
	return ns, nil
}

// create makes the namespace on a locked thread and takes that thread back
// to the namespace it came from.
func create() (vnetns.NsHandle, error) {
	fd := vnetns.None()
	unshare := func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("netns: create: %w", err)
		}
		return nil
	}
	open := func() (err error) {
		if fd, err = vnetns.Get(); err != nil {
			return fmt.Errorf("netns: open new namespace: %w", err)
		}
		return nil
	}
	if err := onThread(unshare, open); err != nil {
		if fd.IsOpen() {
			fd.Close()
		}
		return vnetns.None(), err
	}
	return fd, nil
}

// setup opens the netlink handle, brings loopback up and turns IPv6 off.
func (ns *NS) setup() error {
	err := ns.Do(func() error {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		ns.nl = h
		return nil
	})
	if err != nil {
		return fmt.Errorf("netns: netlink handle: %w", err)
	}
	if err := ns.SetUp("lo"); err != nil {
		return err
	}
	for _, p := range []string{"net/ipv6/conf/all/disable_ipv6", "net/ipv6/conf/default/disable_ipv6"} {
		// Without IPv6 in the kernel there is nothing to disable.
		if err := ns.Sysctl(p, "1"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Do runs fn on a new goroutine whose OS thread is locked inside the
// namespace, and waits for it. Sockets fn creates belong to the namespace
// and may be used from anywhere afterwards; goroutines fn starts do not
// run inside it. If the thread cannot be returned to its original
// namespace it is discarded and Do returns an error besides fn's.
func (ns *NS) Do(fn func() error) error {
	enter := func() error {
		if err := vnetns.Set(ns.fd); err != nil {
			return fmt.Errorf("netns: enter %s: %w", ns, err)
		}
		return nil
	}
	return onThread(enter, fn)
}

// onThread runs enter and then fn on a new goroutine with its OS thread
// locked, and waits for it. enter moves the thread into another network
// namespace, or fails leaving it where it was (setns and unshare are all
// or nothing). After fn the thread goes back; if it cannot, it stays
// locked, so that the Go runtime ends it with the goroutine rather than
// run other goroutines in the wrong namespace.
func onThread(enter, fn func() error) error {
	c := make(chan error, 1)
	go func() { c <- runOnThread(enter, fn) }()
	return <-c
}

func runOnThread(enter, fn func() error) error {
	runtime.LockOSThread()
	orig, err := vnetns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: current namespace: %w", err)
	}
	defer orig.Close()
	if err := enter(); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	fnErr := fn()
	if err := vnetns.Set(orig); err != nil {
		return errors.Join(fnErr, fmt.Errorf("netns: return to original namespace: %w", err))
	}
	runtime.UnlockOSThread()
	return fnErr
}

// Handle returns the namespace's netlink handle (NETLINK_ROUTE), whose
// socket was created inside the namespace. It is valid until Close and
// safe for concurrent use.
func (ns *NS) Handle() *netlink.Handle { return ns.nl }

// NsHandle returns the namespace's file descriptor as a
// github.com/vishvananda/netns handle, for APIs that open sockets in a
// namespace (netlink.NewHandleAt, arpprobe.OpenKernelAt). It is valid
// until Close; the caller must not close it.
func (ns *NS) NsHandle() vnetns.NsHandle { return ns.fd }

// Close closes the netlink handle and the namespace's file descriptor.
// When nothing else refers to the namespace (no thread inside it, no
// socket created in it) the kernel then destroys it with its links,
// asynchronously. Calling Close again returns the first call's result.
func (ns *NS) Close() error {
	ns.closeOnce.Do(func() {
		if ns.nl != nil {
			ns.nl.Close()
		}
		if err := ns.fd.Close(); err != nil {
			ns.closeErr = fmt.Errorf("netns: close: %w", err)
		}
	})
	return ns.closeErr
}

// String identifies the namespace by device and inode, as in
// "NS(4:4026532281)"; equal strings mean the same namespace.
func (ns *NS) String() string {
	return ns.fd.UniqueId()
}

// Sysctl writes value to the namespace's sysctl path, given relative to
// /proc/sys, such as "net/ipv4/conf/all/arp_ignore". Only net/ paths are
// accepted: other sysctls are not per namespace and would change the host.
// The write is done from a thread inside the namespace, which is what
// makes /proc/sys/net refer to it.
func (ns *NS) Sysctl(path, value string) error {
	p, err := sysctlPath(path)
	if err != nil {
		return err
	}
	err = ns.Do(func() error {
		// No O_CREATE: a sysctl that does not exist is ErrNotExist.
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			return err
		}
		_, err = f.WriteString(value)
		return errors.Join(err, f.Close())
	})
	if err != nil {
		return fmt.Errorf("netns: sysctl %s=%s: %w", path, value, err)
	}
	return nil
}

// ReadSysctl returns the value of the namespace's sysctl path (as for
// Sysctl), without the trailing newline.
func (ns *NS) ReadSysctl(path string) (string, error) {
	p, err := sysctlPath(path)
	if err != nil {
		return "", err
	}
	var b []byte
	err = ns.Do(func() (err error) {
		b, err = os.ReadFile(p)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("netns: read sysctl %s: %w", path, err)
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

// sysctlPath returns the /proc/sys file of a net/ sysctl path.
func sysctlPath(path string) (string, error) {
	clean := filepath.Clean(path)
	if clean != path || !strings.HasPrefix(clean, "net/") {
		return "", fmt.Errorf("netns: sysctl %q: not a path below net/", path)
	}
	return filepath.Join("/proc/sys", clean), nil
}
