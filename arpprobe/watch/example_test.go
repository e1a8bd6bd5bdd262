package watch_test

import (
	"context"
	"log"
	"log/slog"
	"net/http"
	"os"
	"os/signal"

	"github.com/arpcheck/arpcheck/arpprobe"
	"github.com/arpcheck/arpcheck/arpprobe/watch"
)

// Watch every entry of the kernel's table and repair stale ones as they
// are found, until SIGINT, with a health check for a supervisor. Needs
// CAP_NET_RAW and CAP_NET_ADMIN; with CAP_BPF and CAP_PERFMON as well, it
// sees entries start being used through the neigh tracepoints instead of
// reading the table four times a second.
func ExampleWatcher() {
	k, err := arpprobe.OpenKernel()
	if err != nil {
		log.Fatal(err)
	}
	defer k.Close()
	events, err := watch.OpenNeighborMonitor()
	if err != nil {
		log.Fatal(err)
	}
	defer events.Close()
	trace, err := watch.OpenNeighborTracer() // loads nothing until Run
	if err != nil {
		log.Fatal(err)
	}
	defer trace.Close()
	w, err := watch.New(watch.Config{
		Table:    k,
		Topology: k,
		Events:   events,
		Trace:    trace, // without the capabilities, Run reads the table instead
		Check: arpprobe.Options{
			Probe:  arpprobe.ProbeOptions{BroadcastRate: 100}, // all checks together
			Repair: &arpprobe.RepairPolicy{},
		},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		log.Fatal(err)
	}
	http.HandleFunc("/healthz", func(rw http.ResponseWriter, _ *http.Request) {
		if err := w.Health(); err != nil {
			http.Error(rw, err.Error(), http.StatusServiceUnavailable)
		}
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := w.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
