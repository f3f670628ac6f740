//go:build linux

package redistest

import "syscall"

// sysProcAttr makes the kernel SIGKILL redis-server when the test binary
// dies without running its Cleanup functions (a go test -timeout panic, a
// killed binary), so no server outlives its test holding a port and a CPU.
//
// Pdeathsig fires when the thread that started the child exits; the Go
// runtime only ends threads whose goroutine exits while locked with
// runtime.LockOSThread, which test goroutines never are.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
