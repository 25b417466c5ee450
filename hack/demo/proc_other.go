//go:build !linux

package main

import "syscall"

// childAttr puts a child in its own process group, so that the terminal's Ctrl-C reaches only
// the demo, which stops the children in order.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// dieWithParent is Linux-only (PR_SET_PDEATHSIG); elsewhere the demo's own shutdown stops the children.
func dieWithParent(parent int) bool { return syscall.Getppid() == parent }
