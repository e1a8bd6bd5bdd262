package arpprobe

import (
	"errors"
	"fmt"
	"time"
)

// The defaults of ProbeOptions, in one place.
const (
	// DefaultTimeout is how long one attempt waits for replies.
	DefaultTimeout = 500 * time.Millisecond
	// DefaultAttempts is how many attempts a silent peer gets. With the
	// default timeout a silent peer is called dead after two attempts and
	// one second, as patient as arp-scan's defaults.
	DefaultAttempts = 2
	// DefaultRate is the most frames per second a run sends, all kinds
	// together. Unicast requests reach only the asked host.
	DefaultRate = 50000
	// DefaultBroadcastRate is the most broadcast requests per second, on
	// average, so a run stays polite on a real LAN.
	DefaultBroadcastRate = 1000
	// DefaultBroadcastWait is how long after its first broadcast request
	// a probe listens at least: a Linux router with proxy_arp answers a
	// broadcast request after a random delay of up to proxy_delay, 0.8 s
	// by default, and a unicast one at once.
	DefaultBroadcastWait = 900 * time.Millisecond
)

// ProbeOptions controls how peers are asked. The zero value means the
// defaults above and BroadcastAuto.
type ProbeOptions struct {
	// Timeout is how long to wait for replies to one attempt. Under
	// BroadcastAuto, the first attempt to a cached MAC (unicast only)
	// waits Timeout/5 before the broadcast goes: a live host answers a
	// unicast request at once, and the broadcast gets the time a proxy
	// ARP answer needs (BroadcastWait) within the same run length.
	Timeout time.Duration
	// Attempts is how many times a request is sent before its peer is
	// given up. Under BroadcastAuto a peer whose cached MAC stays silent
	// always gets at least one broadcast attempt, so with Attempts 1 such
	// a peer gets a second attempt for the broadcast.
	Attempts int
	// Broadcast decides who gets broadcast requests.
	Broadcast BroadcastPolicy
	// Rate is the most frames sent per second, all kinds together, with
	// bursts of at most Rate/100 frames.
	Rate int
	// BroadcastRate is the most broadcast frames sent per second on
	// average, with bursts of at most BroadcastRate/4 (counted in Rate too).
	BroadcastRate int
	// Settle is how long to keep listening for further owners after an
	// address answered a broadcast, before its probe ends early (conflict
	// detection). Zero means Timeout/4; it never exceeds Timeout.
	Settle time.Duration
	// BroadcastWait is how long after its first broadcast request a
	// probe keeps listening, at least, before it ends on what did and
	// did not answer, so that a proxy ARP answer (delayed up to 0.8 s by
	// Linux's default proxy_delay) is heard, alone or beside another
	// owner. Zero means DefaultBroadcastWait, capped at Attempts ×
	// Timeout, so that it never lengthens a run with short timeouts.
	BroadcastWait time.Duration
}

// errOptions is wrapped by option validation errors.
var errOptions = errors.New("invalid probe options")

// WithDefaults returns o as a check uses it: zero fields replaced by the
// defaults, BroadcastRate capped at Rate. It returns an error naming the
// fields if one is out of range.
func (o ProbeOptions) WithDefaults() (ProbeOptions, error) {
	if o.Timeout < 0 || o.Attempts < 0 || o.Rate < 0 || o.BroadcastRate < 0 || o.Settle < 0 || o.BroadcastWait < 0 {
		return o, fmt.Errorf("arpprobe: %w: negative timeout, attempts, rate, settle or broadcast wait", errOptions)
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Attempts == 0 {
		o.Attempts = DefaultAttempts
	}
	if o.Rate == 0 {
		o.Rate = DefaultRate
	}
	if o.BroadcastRate == 0 {
		o.BroadcastRate = DefaultBroadcastRate
	}
	if o.BroadcastRate > o.Rate {
		o.BroadcastRate = o.Rate
	}
	if o.Settle == 0 {
		o.Settle = o.Timeout / 4
	}
	o.Settle = min(o.Settle, o.Timeout)
	if o.BroadcastWait == 0 {
		o.BroadcastWait = min(DefaultBroadcastWait, time.Duration(o.Attempts)*o.Timeout)
	}
	p, err := ParseBroadcastPolicy(string(o.Broadcast))
	if err != nil {
		return o, err
	}
	o.Broadcast = p
	return o, nil
}
