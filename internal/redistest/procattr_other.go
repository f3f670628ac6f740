//go:build !linux

package redistest

import "syscall"

// sysProcAttr returns nil: parent-death signals are Linux-only, so elsewhere
// a server outlives a test binary that dies without running Cleanup.
func sysProcAttr() *syscall.SysProcAttr {
	return nil
}
