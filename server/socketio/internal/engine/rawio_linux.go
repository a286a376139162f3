//go:build linux && !engine_portable

package engine

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The loops' and flushers' system calls on non-blocking descriptors go
// straight to the kernel (RawSyscall), without telling Go's scheduler:
// none of them can block. A plain syscall.Syscall made while every P is
// idle wakes sysmon (entersyscall), which then polls every 20 µs until
// the process is idle again: at 100 messages a second to rooms of 10
// that was a fifth of the server's CPU (perf), where Node's one thread
// spends nothing. cloudwego/netpoll does the same for its reads and
// writes.

func rawRead(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return rawResult(n, e)
}

func rawWrite(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return rawResult(n, e)
}

// rawIOV is how many buffers rawWritev describes on the stack.
const rawIOV = 16

func rawWritev(fd int, v [][]byte) (int, error) {
	var stack [rawIOV]unix.Iovec
	iov := stack[:0]
	if len(v) > rawIOV {
		iov = make([]unix.Iovec, 0, len(v))
	}
	for _, b := range v {
		if len(b) == 0 {
			continue
		}
		var x unix.Iovec
		x.Base = &b[0]
		x.SetLen(len(b))
		iov = append(iov, x)
	}
	if len(iov) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	return rawResult(n, e)
}

// rawEpollWait returns the ready events at once (a zero timeout).
func rawEpollWait(epfd int, events []unix.EpollEvent) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	return rawResult(n, e)
}

func rawResult(n uintptr, e syscall.Errno) (int, error) {
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}
