package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
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

// controlPlane is an envtest kube-apiserver and etcd with the ClerkUser CRD installed, and a
// kubeconfig file for the manager.
type controlPlane struct {
	env        *envtest.Environment
	kubeconfig string
}

// startControlPlane starts envtest (binaries from KUBEBUILDER_ASSETS) and writes a
// cluster-admin kubeconfig into dir.
func startControlPlane(crdDir, dir string) (*controlPlane, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, errors.New("KUBEBUILDER_ASSETS is not set: run 'make bench', which builds or finds kube-apiserver and etcd")
	}
	env := &envtest.Environment{CRDDirectoryPaths: []string{crdDir}, ErrorIfCRDPathMissing: true}
	if _, err := env.Start(); err != nil {
		return nil, fmt.Errorf("start envtest: %w", err)
	}
	cp := &controlPlane{env: env}
	user, err := env.AddUser(envtest.User{Name: "kubeclerk-bench", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		cp.stop()
		return nil, fmt.Errorf("add envtest user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		cp.stop()
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	cp.kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(cp.kubeconfig, kc, 0o600); err != nil {
		cp.stop()
		return nil, err
	}
	return cp, nil
}

func (cp *controlPlane) stop() {
	if err := cp.env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "bench: stop envtest:", err)
	}
}

// process is a child process whose output goes to a log file.
type process struct {
	name    string
	cmd     *exec.Cmd
	log     *os.File
	started time.Time
	done    chan struct{}
	err     error
}

// startProcess starts bin with args and extra environment, logging to logPath.
func startProcess(name, bin string, args, env []string, logPath string) (*process, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	// The context never ends: stop() ends the process, with SIGTERM first.
	cmd := exec.CommandContext(context.Background(), bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = lf, lf
	// Own process group, so that a Ctrl-C on the bench reaches children only through stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &process{name: name, cmd: cmd, log: lf, done: make(chan struct{})}
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

func (p *process) pid() int { return p.cmd.Process.Pid }

// exitError describes an unexpected exit of p.
func (p *process) exitError() error {
	if p.err == nil {
		return fmt.Errorf("%s exited with status 0 (see %s)", p.name, p.log.Name())
	}
	return fmt.Errorf("%s exited (see %s): %w", p.name, p.log.Name(), p.err)
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to 15 s, then kills.
func (p *process) stop() {
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitForLine waits until the log file of p holds a line containing substr.
func (p *process) waitForLine(ctx context.Context, substr string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p.exited() {
			return "", p.exitError()
		}
		if f, err := os.Open(p.log.Name()); err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				if strings.Contains(sc.Text(), substr) {
					_ = f.Close()
					return sc.Text(), nil
				}
			}
			_ = f.Close()
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return "", fmt.Errorf("%s did not print %q within %s (see %s)", p.name, substr, timeout, p.log.Name())
}

// memory is what /proc says of a process: resident set now and at its peak, in bytes.
type memory struct{ rss, peak int64 }

// readMemory parses VmRSS and VmHWM from /proc/<pid>/status.
func readMemory(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	return parseProcStatus(string(b)), nil
}

// parseProcStatus reads VmRSS and VmHWM ("VmRSS:	  123456 kB") from a /proc status file.
func parseProcStatus(s string) memory {
	var m memory
	for line := range strings.Lines(s) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		if len(f) > 1 && strings.EqualFold(f[1], "kB") {
			n *= 1024
		}
		switch k {
		case "VmRSS":
			m.rss = n
		case "VmHWM":
			m.peak = n
		}
	}
	return m
}

// parseMetric returns the value of an unlabelled metric in Prometheus text format.
func parseMetric(text, name string) (float64, bool) {
	for line := range strings.Lines(text) {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || !strings.HasPrefix(rest, " ") {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err == nil {
			return v, true
		}
	}
	return 0, false
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// getText GETs url and returns the body.
func getText(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

// fetchStats reads the fake's request counters.
func fetchStats(ctx context.Context, base string) (Stats, error) {
	body, err := getText(ctx, base+"/_fake/stats")
	if err != nil {
		return Stats{}, err
	}
	var s Stats
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		return Stats{}, fmt.Errorf("decode /_fake/stats: %w", err)
	}
	return s, nil
}

// heapBytes reads go_memstats_heap_alloc_bytes from a manager's /metrics.
func heapBytes(ctx context.Context, metricsAddr string) (float64, error) {
	body, err := getText(ctx, "http://"+metricsAddr+"/metrics")
	if err != nil {
		return 0, err
	}
	v, ok := parseMetric(body, "go_memstats_heap_alloc_bytes")
	if !ok {
		return 0, errors.New("no go_memstats_heap_alloc_bytes in /metrics")
	}
	return v, nil
}
