package arpprobe

// BatchWriter is an optional interface of a FrameConn that sends several
// frames with one system call. The FrameConn of ListenARP implements it
// with sendmmsg(2). On a veth, sending what a window of 64 outstanding
// requests has room for with one WriteFrames call, instead of a
// WriteFrame per request, gave about a fifth more request/reply exchanges
// per second (BenchmarkExchange: some 190k against 160k).
type BatchWriter interface {
	// WriteFrames sends frames in order, each a whole Ethernet frame as
	// for WriteFrame. It returns how many were sent; when that is fewer
	// than len(frames), the error is the one of frames[n], and the frames
	// after it were not sent. It blocks only while the socket's send
	// buffer is full.
	WriteFrames(frames [][]byte) (int, error)
}
