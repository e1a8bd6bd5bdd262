package watch

import (
	"errors"
	"fmt"
	"time"
)

// Health reports what is wrong with the Watcher, nil when nothing: it
// must be running (Run called and not returned), have finished its first
// sweep and, if it sweeps (Interval > 0), have finished one within two
// intervals and a minute. It is what `arpcheck watch` serves on
// /healthz. It is safe to call from any goroutine and costs a lock.
func (w *Watcher) Health() error { return w.health(time.Now()) }

func (w *Watcher) health(now time.Time) error {
	w.smu.Lock()
	last := w.stats.LastSweep
	w.smu.Unlock()
	switch {
	case !w.running.Load():
		return errors.New("not running")
	case last.IsZero():
		return errors.New("starting: first sweep not finished")
	case w.cfg.Interval > 0 && now.Sub(last) > 2*w.cfg.Interval+time.Minute:
		return fmt.Errorf("no sweep finished for %s", now.Sub(last).Round(time.Second))
	}
	return nil
}
