package arpprobe

// CapabilityError is the error of an operation refused for lack of a
// Linux capability: CAP_NET_RAW to open the raw sockets that probe,
// CAP_NET_ADMIN to write the neighbour table. Err keeps the system's
// error, so errors.Is(err, os.ErrPermission) is true as well; Error
// names the capability.
type CapabilityError struct {
	// Capability is the missing capability, such as "CAP_NET_RAW".
	Capability string
	// Err is the refused operation's error, with what was being done.
	Err error
}

// Error returns Err's text, which names the capability.
func (e *CapabilityError) Error() string { return e.Err.Error() }

// Unwrap returns Err.
func (e *CapabilityError) Unwrap() error { return e.Err }
