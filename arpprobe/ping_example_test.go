package arpprobe_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"time"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// Ask three times who has 198.18.0.2, printing each reply as it comes.
// Needs CAP_NET_RAW.
func ExamplePing() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := arpprobe.Ping(ctx, arpprobe.PingConfig{
		Target: netip.MustParseAddr("198.18.0.2"),
		Count:  3,
		OnReply: func(r arpprobe.PingReply) {
			fmt.Printf("reply from %s [%s] %v\n", r.IP, r.MAC, r.RTT)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d sent, %d answered, %.0f%% loss\n", st.Sent, st.Answered, 100*st.Loss())
}
