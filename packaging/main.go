package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
)

// options are the command line.
type options struct {
	root    string   // the repository, holding cmd/arpcheck and examples/deploy
	out     string   // where the packages go
	version string   // the release, "" for a snapshot named after the commit
	arch    string   // GOARCH of the binary
	formats []string // deb, rpm
}

func main() {
	var o options
	var formats string
	flag.StringVar(&o.root, "root", "..", "the arpcheck repository")
	flag.StringVar(&o.out, "out", "dist", "directory the packages are written to")
	flag.StringVar(&o.version, "version", "", "release version, e.g. v1.2.3 (default: 0.0.0~git<date>.<commit>, and the binary reports its VCS revision)")
	flag.StringVar(&o.arch, "arch", runtime.GOARCH, "GOARCH to build for")
	flag.StringVar(&formats, "format", "deb,rpm", "comma-separated package formats: deb, rpm")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "packaging: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	o.formats = strings.Split(formats, ",")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	paths, err := run(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "packaging: %v\n", err)
		os.Exit(1)
	}
	for _, p := range paths {
		fmt.Println(p)
	}
}

// run builds the packages and returns their paths.
func run(ctx context.Context, o options) ([]string, error) {
	for _, f := range o.formats {
		if f != "deb" && f != "rpm" {
			return nil, fmt.Errorf("format %q: want deb or rpm", f)
		}
	}
	root, err := filepath.Abs(o.root)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "arpcheck")); err != nil {
		return nil, fmt.Errorf("-root %s is not the arpcheck repository: %w", o.root, err)
	}
	rev, err := gitRevision(ctx, root)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "arpcheck-packaging-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	art, err := buildArtifacts(ctx, root, tmp, o.arch, o.version)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	for _, format := range o.formats {
		// nFPM rewrites the contents it is given: each package gets its own.
		contents, err := packageContents(root, tmp, art)
		if err != nil {
			return nil, err
		}
		info, err := packageInfo(o.version, rev, o.arch, contents, tmp)
		if err != nil {
			return nil, err
		}
		path, err := writePackage(format, info, o.out)
		if err != nil {
			return nil, err
		}
		paths = append(paths, path)
	}
	return paths, nil
}
