// Package deploycheck holds the tests of the deployment files in
// examples/deploy (cron, systemd, node_exporter, Nagios): that they parse
// as cron and systemd read them, that every arpcheck flag they use exists,
// and that their command lines do what the files promise when run in a
// network namespace. It has no code of its own.
//
// It lives beside examples/deploy rather than inside it, because
// examples/deploy may hold a Go module of its own.
package deploycheck
