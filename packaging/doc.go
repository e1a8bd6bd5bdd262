// Command packaging builds arpcheck's .deb and .rpm packages with nFPM
// (github.com/goreleaser/nfpm) used as a library. Run it from this
// directory:
//
//	go run . -out dist            # both packages, version from git
//	go run . -out dist -format deb -version v1.2.3
//
// It builds a static, stripped binary of ../cmd/arpcheck (CGO_ENABLED=0,
// -trimpath, -ldflags '-s -w'), asks that binary for its man page and its
// bash completion, and packs them with the deployment files of
// ../examples/deploy:
//
//	/usr/bin/arpcheck                                 CAP_NET_RAW and CAP_NET_ADMIN set on install, never setuid
//	/usr/share/man/man1/arpcheck.1.gz                 arpcheck man
//	/usr/share/bash-completion/completions/arpcheck   arpcheck completion bash
//	/usr/lib/systemd/system/arpcheck.service          the units of examples/deploy/systemd, with
//	/usr/lib/systemd/system/arpcheck.timer            /usr/bin/arpcheck for /usr/local/bin/arpcheck;
//	/usr/lib/systemd/system/arpcheck-watch.service    installed, not enabled or started
//	/usr/lib/sysusers.d/arpcheck.conf                 the arpcheck system user
//	/usr/lib/tmpfiles.d/arpcheck.conf                 node_exporter's textfile directory
//	/etc/cron.d/arpcheck                              examples/deploy/cron/arpcheck with its job commented out
//
// Nothing runs until the operator enables one way of running it:
// systemctl enable --now arpcheck.timer (textfile metrics every minute),
// systemctl enable --now arpcheck-watch.service (continuous, /metrics on
// port 9808), or the job line of /etc/cron.d/arpcheck uncommented.
// Removing the package stops and disables the units; purging it (or
// removing the .rpm) also removes the arpcheck user, the lock files and
// the metrics file arpcheck wrote.
//
// The packager lives in a module of its own so that nFPM and its
// dependencies never reach the library's go.mod.
package main
