//go:build linux

package main

import "syscall"

// childAttr puts a child in its own process group (so that the terminal's Ctrl-C reaches only
// the demo, which stops the children in order) and has the kernel send it SIGTERM should the
// demo die without stopping it.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

// dieWithParent asks the kernel to send SIGTERM to this process when parent dies, and reports
// false when parent is already gone. The setting survives exec, which is how the control
// plane's processes get it.
func dieWithParent(parent int) bool {
	_, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0)
	if errno != 0 {
		return true
	}
	return syscall.Getppid() == parent
}
