package arpprobe_test

import (
	"fmt"
	"strings"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// Parse a peer list in the format of `ip -4 neigh show`.
func ExampleParsePeers() {
	list := `# web servers
198.18.0.2 dev eth0 lladdr 02:00:00:00:00:02 REACHABLE
198.18.0.4/31
198.18.0.2 (a repeat)
`
	peers, err := arpprobe.ParsePeers(strings.NewReader(list), "peers.txt")
	fmt.Println(peers, err)
	_, err = arpprobe.ParsePeers(strings.NewReader("198.18.0.2\n198.18.1.300\n"), "peers.txt")
	fmt.Println(err)
	// Output:
	// [198.18.0.2 198.18.0.4 198.18.0.5] <nil>
	// peers.txt:2: "198.18.1.300": not an IPv4 address or prefix
}
