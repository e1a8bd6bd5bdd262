package watch

import (
	"testing"
	"time"
)

func TestWatcherHealth(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name      string
		running   bool
		lastSweep time.Time
		interval  time.Duration
		want      string // "" for healthy
	}{
		{"not running", false, now, time.Minute, "not running"},
		{"first sweep under way", true, time.Time{}, time.Minute, "starting: first sweep not finished"},
		{"swept just now", true, now, time.Minute, ""},
		{"swept two intervals and a minute ago", true, now.Add(-3 * time.Minute), time.Minute, ""},
		{"no sweep for longer", true, now.Add(-3*time.Minute - time.Second), time.Minute, "no sweep finished for 3m1s"},
		{"no sweeps but the first: never late", true, now.Add(-24 * time.Hour), -1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &Watcher{cfg: Config{Interval: tt.interval}}
			w.running.Store(tt.running)
			w.stats.LastSweep = tt.lastSweep
			got := ""
			if err := w.health(now); err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("health = %q; want %q", got, tt.want)
			}
		})
	}
}
