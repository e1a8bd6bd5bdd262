package arpprobe

import (
	"os"
	"syscall"
)

func syscallErr(name string) error {
	errno := map[string]syscall.Errno{"ENOBUFS": syscall.ENOBUFS, "ENETDOWN": syscall.ENETDOWN}[name]
	return os.NewSyscallError("sendto", errno)
}
