// Package fake is a broadcast domain and a neighbour table in memory,
// for tests of code built on arpprobe that run without privileges: a
// LAN whose hosts answer ARP requests as a Linux kernel does, behind
// the FrameConns of an arpprobe.ProberConfig, and a Table that is an
// arpprobe.NeighborTable and Topology.
//
// Package arpprobe's own tests cannot import it (it imports arpprobe);
// they keep fakes of their own in package arpprobe's test files.
package fake
