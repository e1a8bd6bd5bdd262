// Command rusage runs a command and writes, as JSON on file descriptor 3,
// its wall time (from just before the fork to the end of wait(2)), its
// user and system time, its peak resident set and its exit code. The
// command's standard files are rusage's own.
//
// benchlab runs each tool through it. Go starts a child with vfork, and
// exec(2) counts the memory of the process it replaces in the new
// program's peak RSS; a tool started by benchlab itself would report
// benchlab's peak (tens of MB). rusage imports little and so starts
// small: a command it starts reports at most about 2 MB too much.
package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"time"
)

type measurement struct {
	WallNs   int64 // from just before the fork to the end of wait(2)
	CPUNs    int64 // user + system time, with the children it waited for
	MaxRSS   int64 // bytes: its largest resident set, or one child's
	ExitCode int   // -1 when killed by a signal
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		os.Stderr.WriteString("rusage: " + err.Error() + "\n")
		os.Exit(125)
	}
}

func run(argv []string) error {
	if len(argv) == 0 {
		return errors.New("usage: rusage COMMAND [ARG...] 3>REPORT")
	}
	report := os.NewFile(3, "report")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	err := cmd.Wait()
	wall := time.Since(start)
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		return err
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	b, err := json.Marshal(measurement{
		WallNs:   wall.Nanoseconds(),
		CPUNs:    ru.Utime.Nano() + ru.Stime.Nano(),
		MaxRSS:   ru.Maxrss * 1024, // Linux reports kilobytes
		ExitCode: cmd.ProcessState.ExitCode(),
	})
	if err != nil {
		return err
	}
	_, err = report.Write(b)
	return errors.Join(err, report.Close())
}
