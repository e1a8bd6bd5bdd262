// Command arpcheck finds and repairs wrong entries in the kernel's ARP
// cache, and asks single addresses arping-style. Its commands, flags,
// output formats and exit statuses are a contract for scripts and
// monitoring; see `arpcheck --help`, `arpcheck man` and the library,
// package arpprobe, which does the work.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// SIGINT and SIGTERM cancel the run: the library finishes a write in
	// progress and starts no new one, and the report is still printed.
	// A second signal ends the program at once, as if none were caught.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	status := run(ctx, os.Args, &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr})
	stop()
	os.Exit(status)
}
