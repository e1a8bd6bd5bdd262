package netns

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
)

// TestUnavailable checks the policy behind Require and NewT without
// privileges: skip locally, fail in CI.
func TestUnavailable(t *testing.T) {
	tests := []struct {
		name, ci   string
		fail, skip bool
	}{
		{"local", "", false, true},
		{"CI", "true", true, false},
		{"CI other value", "1", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			ft := &fakeTB{TB: t}
			ft.run(func(tb testing.TB) { unavailable(tb, "needs root") })
			if ft.failed != tt.fail || ft.skipped != tt.skip {
				t.Errorf("CI=%q: failed %v, skipped %v; want %v, %v", tt.ci, ft.failed, ft.skipped, tt.fail, tt.skip)
			}
		})
	}
}

func TestCheckT(t *testing.T) {
	t.Setenv("CI", "")
	tests := []struct {
		name       string
		err        error
		fail, skip bool
	}{
		{"no error", nil, false, false},
		{"permission", fmt.Errorf("netns: create: %w", syscall.EPERM), false, true},
		{"other", errors.New("netns: create: no memory"), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := &fakeTB{TB: t}
			ft.run(func(tb testing.TB) { checkT(tb, tt.err) })
			if ft.failed != tt.fail || ft.skipped != tt.skip {
				t.Errorf("checkT(%v): failed %v, skipped %v; want %v, %v", tt.err, ft.failed, ft.skipped, tt.fail, tt.skip)
			}
		})
	}
}
