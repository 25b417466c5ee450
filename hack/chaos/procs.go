package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// freeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String(), nil
}

// process is a child process whose output goes to a log file. A marker line, once printed,
// sets a flag (a manager's "Starting workers": it leads).
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	started time.Time
	done    chan struct{}
	err     error
	killed  atomic.Bool // ended by the harness with SIGKILL
	marked  atomic.Bool // printed the marker
	markAt  atomic.Int64
	pprof   string // the address of a manager's /debug/pprof, when it serves one
}

// markWriter copies output to a file and watches it for a marker line.
type markWriter struct {
	f      *os.File
	marker []byte
	p      *process
	tail   []byte
}

func (w *markWriter) Write(b []byte) (int, error) {
	if !w.p.marked.Load() && len(w.marker) > 0 {
		buf := append(slices.Clone(w.tail), b...)
		if bytes.Contains(buf, w.marker) {
			w.p.markAt.Store(time.Now().UnixNano())
			w.p.marked.Store(true)
		}
		if n := len(w.marker) - 1; len(buf) > n {
			buf = buf[len(buf)-n:]
		}
		w.tail = append(w.tail[:0], buf...)
	}
	return w.f.Write(b)
}

// startProcess starts bin with args and extra environment, logging to logPath.
func startProcess(name, bin string, args, env []string, logPath, marker string) (*process, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	// The context never ends: stop or kill ends the process.
	cmd := exec.CommandContext(context.Background(), bin, args...)
	cmd.Env = append(os.Environ(), env...)
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	w := &markWriter{f: lf, marker: []byte(marker), p: p}
	cmd.Stdout, cmd.Stderr = w, w
	// Own process group: a Ctrl-C on the harness reaches children only through stop. The
	// kernel ends the child should the harness die without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.started = time.Now()
	go func() {
		p.err = cmd.Wait()
		_ = lf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitError describes an exit of p.
func (p *process) exitError() error {
	if p.err == nil {
		return fmt.Errorf("%s exited with status 0 (see %s)", p.name, p.logPath)
	}
	return fmt.Errorf("%s exited (see %s): %w", p.name, p.logPath, p.err)
}

// stop sends SIGTERM, waits up to 15 s, then kills.
func (p *process) stop() {
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(15 * time.Second)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// kill ends p with SIGKILL and waits for it.
func (p *process) kill() {
	if p == nil || p.exited() {
		return
	}
	p.killed.Store(true)
	_ = p.cmd.Process.Kill()
	<-p.done
}

// waitForLine waits until the log of p holds a line containing substr.
func (p *process) waitForLine(ctx context.Context, substr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p.exited() {
			return p.exitError()
		}
		if f, err := os.Open(p.logPath); err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				if strings.Contains(sc.Text(), substr) {
					_ = f.Close()
					return nil
				}
			}
			_ = f.Close()
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("%s did not print %q within %s (see %s)", p.name, substr, timeout, p.logPath)
}

// firstError returns the last line of the log at path that reports an error.
func firstError(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	for _, l := range slices.Backward(lines) {
		if strings.Contains(l, "ERROR") || strings.Contains(l, "error") {
			return strings.ReplaceAll(l, "\t", " ")
		}
	}
	return lines[len(lines)-1]
}

// leaderMarker is what a manager prints once it leads: its controllers start their workers.
const leaderMarker = "Starting workers"

// fleet runs the manager replicas the way a Deployment's pods run: each slot has one process,
// started again shortly after it ends, whatever ended it.
type fleet struct {
	bin          string
	dir          string
	env          []string
	args         func(slot int) []string
	restartDelay time.Duration
	// pprof: the replicas serve /debug/pprof on a port of their own, for stall diagnosis.
	pprof bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	procs  []*process
	starts []int
	events []string
	kills  int
	exits  int    // ends the harness did not cause
	ended  []term // leader terms of processes that ended
}

// startFleet starts n replicas and supervises them until stop.
func startFleet(ctx context.Context, n int, bin, dir string, env []string, args func(slot int) []string, pprof bool) *fleet {
	f := &fleet{bin: bin, dir: dir, env: env, args: args, restartDelay: time.Second, pprof: pprof,
		procs: make([]*process, n), starts: make([]int, n)}
	f.ctx, f.cancel = context.WithCancel(ctx)
	for slot := range n {
		f.wg.Go(func() { f.supervise(slot) })
	}
	return f
}

func (f *fleet) supervise(slot int) {
	delay := f.restartDelay / 2
	for f.ctx.Err() == nil {
		f.mu.Lock()
		f.starts[slot]++
		inc := f.starts[slot]
		f.mu.Unlock()
		log := filepath.Join(f.dir, fmt.Sprintf("manager-%d.%d.log", slot, inc))
		args, pprof := f.args(slot), ""
		if f.pprof {
			if addr, err := freeAddr(); err == nil {
				pprof = addr
				args = append(args, "--pprof-bind-address", pprof)
			}
		}
		p, err := startProcess(fmt.Sprintf("manager %d.%d", slot, inc), f.bin, args, f.env, log, leaderMarker)
		if err != nil {
			f.event("replica %d: %v", slot, err)
			if sleep(f.ctx, f.restartDelay) != nil {
				return
			}
			continue
		}
		p.pprof = pprof
		f.mu.Lock()
		f.procs[slot] = p
		f.mu.Unlock()
		select {
		case <-p.done:
		case <-f.ctx.Done():
			p.stop()
			return
		}
		lived := time.Since(p.started)
		if p.marked.Load() {
			f.mu.Lock()
			f.ended = append(f.ended, term{from: time.Unix(0, p.markAt.Load()), to: time.Now()})
			f.mu.Unlock()
		}
		if p.killed.Load() {
			f.event("replica %d.%d killed (SIGKILL) after %s", slot, inc, lived.Round(time.Second))
		} else {
			f.mu.Lock()
			f.exits++
			f.mu.Unlock()
			f.event("replica %d.%d exited by itself after %s (%v): %s", slot, inc, lived.Round(time.Second), p.err, firstError(log))
		}
		// Like the kubelet's back-off for a container that keeps failing: it doubles while the
		// process dies young, and starts over once one ran for a while.
		if lived > 10*time.Second {
			delay = f.restartDelay
		} else if delay = 2 * delay; delay > 8*time.Second {
			delay = 8 * time.Second
		}
		if sleep(f.ctx, delay) != nil {
			return
		}
	}
}

func (f *fleet) event(format string, args ...any) {
	msg := time.Now().Format("15:04:05.000") + " " + fmt.Sprintf(format, args...)
	f.mu.Lock()
	f.events = append(f.events, msg)
	f.mu.Unlock()
	logf("%s", fmt.Sprintf(format, args...))
}

// leaders returns the slots whose running process leads.
func (f *fleet) leaders() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []int
	for slot, p := range f.procs {
		if p != nil && !p.exited() && p.marked.Load() {
			out = append(out, slot)
		}
	}
	return out
}

// terms returns the leader terms so far: from a process's "Starting workers" to its end (or
// far ahead, for one that still runs).
func (f *fleet) terms() []term {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := slices.Clone(f.ended)
	for _, p := range f.procs {
		if p != nil && !p.exited() && p.marked.Load() {
			out = append(out, term{from: time.Unix(0, p.markAt.Load()), to: time.Now().Add(24 * time.Hour)})
		}
	}
	return out
}

// leaderProcess returns the process that leads, or nil.
func (f *fleet) leaderProcess() *process {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.procs {
		if p != nil && !p.exited() && p.marked.Load() {
			return p
		}
	}
	return nil
}

// waitLeader waits until a replica leads, and returns its slot.
func (f *fleet) waitLeader(ctx context.Context, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		if l := f.leaders(); len(l) > 0 {
			return l[0], nil
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("no manager replica became leader within %s (logs in %s)", timeout, f.dir)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return -1, err
		}
	}
}

// kill SIGKILLs the process of slot (the supervisor starts it again).
func (f *fleet) kill(slot int, why string) {
	f.mu.Lock()
	p := f.procs[slot]
	f.kills++
	f.mu.Unlock()
	if p == nil || p.exited() {
		return
	}
	lead := p.marked.Load()
	f.event("killing replica %d (%s, %s) with SIGKILL: %s", slot, p.name, map[bool]string{true: "leader", false: "standby"}[lead], why)
	p.kill()
}

// killRandom SIGKILLs one replica, chosen at random.
func (f *fleet) killRandom(why string) {
	f.kill(rand.IntN(len(f.procs)), why) //nolint:gosec // the victim needs no cryptographic randomness
}

// stop ends every replica and the supervision.
func (f *fleet) stop() {
	f.cancel()
	f.wg.Wait()
}

// counts returns how many kills the harness made and how many exits it did not cause.
func (f *fleet) counts() (kills, exits int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.kills, f.exits
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
