// Package fleetcheck holds the tests of the fleet deployment files in
// examples/deploy: the Kubernetes manifests (kubernetes/), the container
// build (container/Containerfile), the Prometheus alerts and the Grafana
// dashboard. It has no code of its own.
//
// The tests decode the manifests with the Kubernetes API types and the
// Prometheus Operator's types, strictly (an unknown or misspelt field
// fails), and check what the files promise: only NET_RAW and NET_ADMIN,
// not privileged, probes on the port watch listens on, flags that
// arpcheck watch has. The alert rules go through Prometheus's own rule
// loader and PromQL parser, and every metric and label value they select
// must be one arpcheck watch exports. The Grafana dashboard
// (grafana/arpcheck.json) gets the same checks, against the metrics the
// binary writes on a namespace LAN (watch's /metrics and the textfile
// metrics of verify and repair). The Containerfile's build command
// is run here, and the DaemonSet's command line runs on a LAN of network
// namespaces with the container's user and capabilities.
//
// These dependencies are heavy and only the tests need them, so this is a
// module of its own (examples/deploy/go.mod): they never reach the
// library's go.mod. A replace directive points it at the repository's
// code. Run the tests from examples/deploy:
//
//	go test -race ./...
package fleetcheck
