package main

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	"github.com/goreleaser/nfpm/v2/rpm"
)

// scripts are the maintainer scripts, one set for both formats: each
// tells dpkg's arguments (configure, remove, purge) from rpm's (the
// number of versions installed after the transaction).
//
//go:embed scripts/*.sh
var scripts embed.FS

// packageInfo describes the package for nFPM. Without a release version
// it is 0.0.0~git<date>.<commit>, which sorts before any release.
func packageInfo(version string, rev revision, goarch string, contents files.Contents, dir string) (*nfpm.Info, error) {
	info := &nfpm.Info{
		Name:        "arpcheck",
		Arch:        goarch,
		Platform:    "linux",
		Version:     version,
		Section:     "net",
		Priority:    "optional",
		Maintainer:  "arpcheck maintainers <arpcheck@users.noreply.github.com>",
		Description: "find and repair stale entries in the ARP cache\narpcheck probes the peers of the kernel's neighbour table and replaces entries\nthat name a MAC address no longer owning the address (a recycled IP), by hand,\nfrom a systemd timer or cron, or continuously (arpcheck watch).",
		Homepage:    "https://github.com/arpcheck/arpcheck",
		License:     "MIT",
		MTime:       rev.time,
	}
	if version == "" {
		snap := rev.time.Format("20060102")
		if rev.short != "" {
			snap += "." + rev.short
		}
		info.Version = "0.0.0"
		info.Prerelease = "git" + snap
		info.VersionSchema = "none"
	}
	info.Contents = contents
	for _, c := range info.Contents {
		c.FileInfo.MTime = rev.time
	}
	for name, dst := range map[string]*string{
		"postinstall.sh": &info.Scripts.PostInstall,
		"preremove.sh":   &info.Scripts.PreRemove,
		"postremove.sh":  &info.Scripts.PostRemove,
	} {
		text, err := fs.ReadFile(scripts, "scripts/"+name)
		if err != nil {
			return nil, err
		}
		*dst = filepath.Join(dir, name)
		if err := os.WriteFile(*dst, text, 0o755); err != nil {
			return nil, err
		}
	}
	return nfpm.WithDefaults(info), nil
}

// writePackage writes info as a package of format into dir and returns
// its path.
func writePackage(format string, info *nfpm.Info, dir string) (string, error) {
	var p nfpm.Packager
	switch format {
	case "deb":
		p = deb.Default
		info.Depends = []string{"libcap2-bin"}
		info.Suggests = []string{"prometheus-node-exporter"}
	case "rpm":
		p = rpm.DefaultRPM
		info.Depends = []string{"/usr/sbin/setcap"}
		info.RPM.Summary = strings.SplitN(info.Description, "\n", 2)[0]
	}
	if err := nfpm.PrepareForPackager(info, format); err != nil {
		return "", fmt.Errorf("%s: %w", format, err)
	}
	path := filepath.Join(dir, p.ConventionalFileName(info))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if err := p.Package(info, f); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("%s: %w", format, err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return path, nil
}
