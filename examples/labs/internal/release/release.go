// Package release builds the arpcheck binary the labs run, as it is
// released: CGO_ENABLED=0 go build -trimpath -ldflags='-s -w'.
package release

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Build builds ./cmd/arpcheck of the module this program belongs to (found
// with `go env GOMOD`) into out, as released. The go tool's output goes to
// log. It blocks for the build: seconds when the build cache is warm, a
// minute or more when it is cold.
func Build(ctx context.Context, out string, log io.Writer) error {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("release: go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./cmd/arpcheck")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("release: go build ./cmd/arpcheck in %s: %w", root, err)
	}
	return nil
}
