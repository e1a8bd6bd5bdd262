package main

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// errLockHeld says another run holds the --lock file.
var errLockHeld = errors.New("another run holds the lock")

// lock takes an exclusive flock(2) on path, creating the file if needed,
// without waiting: if another process holds it, the error wraps
// errLockHeld. The file's contents are never touched (any file can serve
// as a lock, as with flock(1)), and the file is left in place: removing
// it would let two runs lock two different files of the same name. The
// lock is released by the returned function, or when the process ends.
func lock(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err != unix.EINTR {
			break
		}
	}
	switch {
	case errors.Is(err, unix.EWOULDBLOCK):
		f.Close()
		return nil, fmt.Errorf("%w %s; not checking twice at once", errLockHeld, path)
	case err != nil:
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}
