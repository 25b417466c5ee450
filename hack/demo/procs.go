package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// shimArg is the hidden first argument that makes the demo binary a shim: it arranges to die with
// the demo, then execs the real binary given as the next argument. envtest starts kube-apiserver
// and etcd through shims, because it offers no way to set their process attributes.
const shimArg = "__exec-with-parent"

// Environment variables the shims read.
const (
	envShimParent = "KUBECLERK_DEMO_PID"
	envShimPidDir = "KUBECLERK_DEMO_PID_DIR"
)

// runShim is the shim's main: it never returns.
func runShim(args []string) {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "kubeclerk-demo: shim needs a binary to run")
		os.Exit(2)
	}
	if parent, err := strconv.Atoi(os.Getenv(envShimParent)); err == nil {
		if !dieWithParent(parent) {
			os.Exit(1) // the demo is already gone
		}
	}
	if dir := os.Getenv(envShimPidDir); dir != "" && (len(args) < 2 || args[1] != "--help") {
		_ = os.WriteFile(filepath.Join(dir, filepath.Base(args[0])+"."+strconv.Itoa(os.Getpid())),
			nil, 0o600)
	}
	err := syscall.Exec(args[0], args, os.Environ())
	fmt.Fprintf(os.Stderr, "kubeclerk-demo: exec %s: %v\n", args[0], err)
	os.Exit(127)
}

// writeShim writes an executable script at path that runs real through this binary's shim mode.
func writeShim(path, self, real string) error {
	script := "#!/bin/sh\nexec " + shellQuote(self) + " " + shimArg + " " + shellQuote(real) + " \"$@\"\n"
	return os.WriteFile(path, []byte(script), 0o755) //nolint:gosec // an executable script
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// shimPids returns the pids the shims recorded in dir.
func shimPids(dir string) []int {
	entries, _ := os.ReadDir(dir)
	var pids []int
	for _, e := range entries {
		i := strings.LastIndexByte(e.Name(), '.')
		if pid, err := strconv.Atoi(e.Name()[i+1:]); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// child is a process the demo started in its own process group.
type child struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // set when done is closed
}

// startChild starts bin with args, its output appended to logPath.
// The child is not tied to ctx: it is stopped with stop, in order.
func startChild(ctx context.Context, name, logPath string, env []string, bin string, args ...string) (*child, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(context.WithoutCancel(ctx), bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		_ = logFile.Close()
		close(c.done)
	}()
	return c, nil
}

// exited reports whether the child has exited.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the child's process group, and SIGKILL after grace.
func (c *child) stop(grace time.Duration) error {
	if c == nil || c.exited() {
		return nil
	}
	pgid := c.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-c.done:
		return nil
	case <-time.After(grace):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-c.done
	return fmt.Errorf("%s did not stop within %s; killed it", c.name, grace)
}

// kill ends the child's process group at once.
func (c *child) kill() {
	if c != nil && !c.exited() {
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// processAlive reports whether pid is a running process.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// tailFile returns the last n lines of path.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
