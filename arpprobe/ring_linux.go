package arpprobe

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A TPACKET_V3 receive ring, the way libpcap reads a capture: the kernel
// copies each frame that passes the socket filter straight into memory
// shared with this process, in blocks, and hands a block over (and wakes
// the reader once) when it is full or its retire timer fires. Reading a
// frame is then a memory access, not a system call, and the kernel's
// per-frame work happens in the receiving softirq, not in the reader. In
// an ARP storm this is what keeps the reader ahead of the LAN (see README
// "Performance" for the storm table).
//
// A block, as the kernel lays it out (struct tpacket_block_desc):
//
//	 0: version, offset to private area   (4+4)
//	 8: block_status                      (4)  TP_STATUS_KERNEL 0 / TP_STATUS_USER 1 (| LOSING …)
//	12: num_pkts                          (4)
//	16: offset_to_first_pkt               (4)
//	20: blk_len                           (4)
//	24: seq_num                           (8)
//	32: ts_first_pkt sec, nsec            (4+4)  when the block was opened
//	40: ts_last_pkt sec, nsec             (4+4)  arrival of its last frame
//
// and each frame in it (struct tpacket3_hdr, then struct sockaddr_ll):
//
//	 0: tp_next_offset (0 for the last frame of the block)  (4)
//	 4: tp_sec, tp_nsec  arrival time, CLOCK_REALTIME        (4+4)
//	12: tp_snaplen, tp_len                                   (4+4)
//	20: tp_status                                            (4)
//	24: tp_mac  offset of the Ethernet header from the frame header (2)
const (
	offBlockStatus = 8
	offBlockPkts   = 12
	offBlockFirst  = 16
	offPktNext     = 0
	offPktSec      = 4
	offPktSnaplen  = 12
	offPktMac      = 24
	pktHeaderLen   = 32 // what is read of a frame header
	blockHeaderLen = 48
)

// ringBlockTimeout is the retire timeout of a partly filled block asked of
// the kernel, in milliseconds: the longest a lone reply waits before the
// reader sees it is about two timer periods (the kernel rounds the
// timeout up to whole jiffies: 4 ms at HZ=250, 10 ms at HZ=100).
const ringBlockTimeout = 1

// rxRing is the mapped ring and the reader's place in it. The reader (one
// goroutine at a time, under packetConn.rmu) owns cur, inBlock, off and
// left; consumed may be read from any goroutine.
type rxRing struct {
	mem       []byte
	blockSize int
	blocks    int

	cur     int  // the block being read, or waited for
	inBlock bool // block cur was handed over and is being read
	off     int  // offset in block cur of its next frame
	left    int  // frames of block cur not yet read

	// consumed counts the frames of the blocks given back to the kernel:
	// every one of them was handed to the reader and dealt with.
	consumed atomic.Uint64
}

// ringGeometry returns the block size and count for a ring of about
// size bytes: 64 KiB blocks (some 450 ARP frames each) for a ring of
// 256 KiB or more, page-sized ones for a smaller ring, and two blocks at
// least, so that the kernel fills one while the reader reads the other.
func ringGeometry(size int) (blockSize, blocks int) {
	page := os.Getpagesize()
	blockSize = 64 << 10
	if size < 4*blockSize {
		blockSize = page
	}
	return blockSize, max(2, size/blockSize)
}

// setupRing turns the bound packet socket fd into a TPACKET_V3 ring of
// about size bytes and maps it. Frames the socket queued before (between
// bind and now) stay in its ordinary queue, which is never read.
func setupRing(fd int, size int) (*rxRing, error) {
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return nil, fmt.Errorf("set TPACKET_V3: %w", err)
	}
	bs, nb := ringGeometry(size)
	req := unix.TpacketReq3{
		Block_size: uint32(bs),
		Block_nr:   uint32(nb),
		// For V3 frames are packed by their length; the kernel only
		// checks that frame size × count matches the blocks.
		Frame_size:     uint32(maxFrameBuffer),
		Frame_nr:       uint32(bs / maxFrameBuffer * nb),
		Retire_blk_tov: ringBlockTimeout,
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return nil, fmt.Errorf("set up a receive ring of %d blocks of %d bytes: %w", nb, bs, err)
	}
	mem, err := unix.Mmap(fd, 0, bs*nb, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map the receive ring: %w", err)
	}
	return &rxRing{mem: mem, blockSize: bs, blocks: nb}, nil
}

// unmap releases the mapping; the ring must not be used afterwards.
func (r *rxRing) unmap() error {
	if r.mem == nil {
		return nil
	}
	err := unix.Munmap(r.mem)
	r.mem = nil
	return err
}

func (r *rxRing) u32(off int) *uint32 { return (*uint32)(unsafe.Pointer(&r.mem[off])) }

// ready reports whether block i has been handed to the reader.
func (r *rxRing) ready(i int) bool {
	return atomic.LoadUint32(r.u32(i*r.blockSize+offBlockStatus))&unix.TP_STATUS_USER != 0
}

// release gives block cur back to the kernel and moves on to the next.
func (r *rxRing) release() {
	base := r.cur * r.blockSize
	r.consumed.Add(uint64(*r.u32(base + offBlockPkts)))
	atomic.StoreUint32(r.u32(base+offBlockStatus), unix.TP_STATUS_KERNEL)
	r.cur = (r.cur + 1) % r.blocks
	r.inBlock, r.off, r.left = false, 0, 0
}

// frameAt returns the frame whose header is at offset off of block cur,
// its arrival time in Unix ns and the offset of the next frame (0: none).
// Offsets the kernel wrote that point outside the block end the block.
func (r *rxRing) frameAt(off int) (frame []byte, at int64, next int) {
	base := r.cur * r.blockSize
	if off < blockHeaderLen || off+pktHeaderLen > r.blockSize {
		return nil, 0, 0
	}
	h := base + off
	snap := int(*r.u32(h + offPktSnaplen))
	mac := int(*(*uint16)(unsafe.Pointer(&r.mem[h+offPktMac])))
	if mac < pktHeaderLen || off+mac+snap > r.blockSize {
		return nil, 0, 0
	}
	at = int64(*r.u32(h + offPktSec))*1e9 + int64(*r.u32(h + offPktSec + 4))
	if n := int(*r.u32(h + offPktNext)); n > 0 {
		next = off + n
	}
	return r.mem[h+mac : h+mac+snap : h+mac+snap], at, next
}

// start begins the walk of block cur, which must have been handed over.
func (r *rxRing) start() {
	base := r.cur * r.blockSize
	r.inBlock = true
	r.left = int(*r.u32(base + offBlockPkts))
	r.off = int(*r.u32(base + offBlockFirst))
}

// nextFrame returns the next frame of block cur and its arrival time, or
// ok false at the end of the block. A frame whose offsets do not fit the
// block is returned as nil, and ends the block.
func (r *rxRing) nextFrame() (frame []byte, at int64, ok bool) {
	if r.left == 0 {
		return nil, 0, false
	}
	frame, at, next := r.frameAt(r.off)
	r.left--
	r.off = next
	if next == 0 {
		r.left = 0
	}
	return frame, at, true
}

// atMonotonic turns a kernel arrival time (Unix ns, wall clock) into a
// time.Time on now's monotonic clock, so that it can be compared with
// the times the prober takes.
func atMonotonic(now time.Time, unixNano int64) time.Time {
	return now.Add(time.Unix(0, unixNano).Sub(now.Round(0)))
}

// errRingClosed is what ReadFrame and ReadBatch of a conn whose ring has
// been unmapped report, wrapped by connError as net.ErrClosed.
var errRingClosed = errors.New("receive ring closed")

// waitBlock is waitFn: true once the block the reader waits for has been
// handed over or the socket has an error (ENETDOWN when the interface
// goes down: the ring says nothing of it), false to wait in the netpoller
// for the kernel's wake-up (it comes when a block is retired, or with the
// error).
func (c *packetConn) waitBlock(fd uintptr) bool {
	if c.ring.ready(c.ring.cur) {
		return true
	}
	if e, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR); err == nil && e != 0 {
		c.rerr = unix.Errno(e)
		return true
	}
	return false
}

// awaitBlock blocks until block cur of the ring is handed to the reader,
// the read deadline passes or the socket is closed. c.rmu is held.
func (c *packetConn) awaitBlock() error {
	r := c.ring
	if r.mem == nil {
		return errRingClosed
	}
	if r.ready(r.cur) {
		return nil
	}
	err := c.rc.Read(c.waitFn)
	if err == nil && c.rerr != nil {
		err, c.rerr = c.rerr, nil
	}
	if err == nil && c.closed.Load() {
		err = errRingClosed
	}
	return err
}

// ringReadFrame is ReadFrame on a ring: it copies the next frame into b.
func (c *packetConn) ringReadFrame(b []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	r := c.ring
	for {
		if r.mem == nil {
			return 0, c.error("read", errRingClosed)
		}
		if r.inBlock {
			if f, _, ok := r.nextFrame(); ok {
				if f != nil {
					return copy(b, f), nil
				}
				continue
			}
			r.release()
		}
		if err := c.awaitBlock(); err != nil {
			return 0, c.error("read", err)
		}
		r.start()
	}
}

// ringConn is the FrameConn of Listen when it has a receive ring: a
// packetConn that also hands frames over a block at a time.
type ringConn struct{ *packetConn }

var _ batchReader = ringConn{}

// ReadBatch waits until the kernel hands over a block of frames, then
// calls fn for each frame of every block handed over by then, with the
// frame's arrival time as the kernel took it (on the monotonic clock of
// time.Now), and gives the blocks back to the kernel. A frame is valid
// only during fn. It blocks like ReadFrame and fails like it.
func (c ringConn) ReadBatch(fn func(frame []byte, at time.Time)) error {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	r := c.ring
	if !r.inBlock {
		if err := c.awaitBlock(); err != nil {
			return c.error("read", err)
		}
	}
	now := time.Now()
	for {
		if !r.inBlock {
			if !r.ready(r.cur) {
				return nil
			}
			r.start()
		}
		for {
			f, at, ok := r.nextFrame()
			if !ok {
				break
			}
			if f != nil {
				fn(f, atMonotonic(now, at))
			}
		}
		r.release()
	}
}

// caughtUp reports whether the reader has dealt with every frame the
// kernel put in the ring until now: the frames of the blocks given back
// against the frames the kernel accepted (PACKET_STATISTICS, one system
// call). A frame in the block the kernel still fills counts as not dealt
// with, until the block's retire timer hands it over. When the count
// cannot be read (the socket is closed), it reports true.
func (c ringConn) caughtUp() bool {
	accepted, err := c.accepted()
	if err != nil {
		return true
	}
	return c.ring.consumed.Load() >= accepted
}
