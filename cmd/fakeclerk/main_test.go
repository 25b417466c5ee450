package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a goroutine-safe bytes.Buffer for run's output.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// start runs the command in the background and waits for its
// "listening on" line; it returns the base URL and a stop function that
// cancels the context and returns the exit code.
func start(t *testing.T, args ...string) (string, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, &stdout, &stderr) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stdout.String(), "\n") {
		select {
		case code := <-done:
			cancel()
			t.Fatalf("exited early with %d: %s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no listening line; stderr: %s", stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	line := strings.TrimSpace(stdout.String())
	url, ok := strings.CutPrefix(line, "listening on ")
	if !ok || !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.HasSuffix(url, "/v1") || strings.HasSuffix(url, ":0/v1") {
		cancel()
		t.Fatalf("unexpected first line %q", line)
	}
	stop := func() int {
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(10 * time.Second):
			t.Fatal("did not shut down")
			return -1
		}
	}
	t.Cleanup(func() { cancel() })
	return url, stop
}

func get(t *testing.T, url, key string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, b
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "seed.json")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestServeSeedAndShutdown(t *testing.T) {
	seed := writeFile(t, `[{"id":"user_seeded","email_addresses":[{"email_address":"seed@example.com"}]},{"username":"second"}]`)
	url, stop := start(t, "--addr", "127.0.0.1:0", "--seed", seed, "--secret-key", "sk_live_cmd",
		"--rate-limit", "3", "--per-user-rate-limit", "0")

	code, _, body := get(t, url+"/users/user_seeded", "sk_live_cmd")
	if code != 200 || !strings.Contains(string(body), `"seed@example.com"`) {
		t.Fatalf("GET seeded user: %d %s", code, body)
	}
	if code, _, _ := get(t, url+"/users", "sk_test_fake"); code != 401 {
		t.Errorf("default key accepted with --secret-key set: %d", code)
	}
	get(t, url+"/users/count", "sk_live_cmd")
	get(t, url+"/users/count", "sk_live_cmd")
	code, hdr, _ := get(t, url+"/users/count", "sk_live_cmd") // 4th authenticated request, limit 3
	if code != 429 || hdr.Get("Retry-After") == "" {
		t.Errorf("rate limit: %d Retry-After %q", code, hdr.Get("Retry-After"))
	}
	code, _, body = get(t, strings.TrimSuffix(url, "/v1")+"/_fake/stats", "")
	var st struct {
		Total       int64 `json:"total"`
		RateLimited int64 `json:"rate_limited"`
	}
	if err := json.Unmarshal(body, &st); code != 200 || err != nil || st.Total != 5 || st.RateLimited != 1 {
		t.Errorf("stats: %d %s", code, body)
	}
	if code := stop(); code != 0 {
		t.Errorf("exit code %d after cancel", code)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url+"/users", nil)
	if res, err := http.DefaultClient.Do(req); err == nil {
		_ = res.Body.Close()
		t.Error("server still answers after shutdown")
	}
}

func TestDefaultsAndLatency(t *testing.T) {
	url, stop := start(t, "--addr", "127.0.0.1:0", "--latency", "100ms", "--lockout-seconds", "60")
	begin := time.Now()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", url+"/users", strings.NewReader(`{"username":"cmd_user"}`))
	req.Header.Set("Authorization", "Bearer sk_test_fake")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var u map[string]any
	_ = json.NewDecoder(res.Body).Decode(&u)
	_ = res.Body.Close()
	if time.Since(begin) < 100*time.Millisecond {
		t.Errorf("--latency not applied")
	}
	req, _ = http.NewRequestWithContext(t.Context(), "POST", url+"/users/"+u["id"].(string)+"/lock", nil)
	req.Header.Set("Authorization", "Bearer sk_test_fake")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(res.Body).Decode(&u)
	_ = res.Body.Close()
	if u["lockout_expires_in_seconds"] != float64(60) {
		t.Errorf("lockout %v", u["lockout_expires_in_seconds"])
	}
	// Default per-user limit: 10 writes per 10 s.
	id := u["id"].(string)
	codes := map[int]int{}
	for range 11 {
		req, _ := http.NewRequestWithContext(t.Context(), "PATCH", url+"/users/"+id+"/metadata", strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer sk_test_fake")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		codes[res.StatusCode]++
	}
	if codes[200] != 10 || codes[429] != 1 {
		t.Errorf("per-user limit: %v", codes)
	}
	if code := stop(); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

func TestBadInvocations(t *testing.T) {
	var stdout, stderr syncBuffer
	bad := writeFile(t, `[{"username":"dupe"},{"username":"ok12"},{"username":"dupe"}]`)
	if code := run(context.Background(), []string{"--addr", "127.0.0.1:0", "--seed", bad}, &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "seed entry 2: duplicate username dupe") {
		t.Errorf("bad seed: code %d stderr %q", code, stderr.String())
	}
	stderr = syncBuffer{}
	if code := run(context.Background(), []string{"--seed", filepath.Join(t.TempDir(), "missing.json")}, &stdout, &stderr); code != 1 {
		t.Errorf("missing seed file: code %d", code)
	}
	if code := run(context.Background(), []string{"--no-such-flag"}, &stdout, &stderr); code != 2 {
		t.Errorf("bad flag: code %d", code)
	}
	if code := run(context.Background(), []string{"--addr", "256.0.0.1:99999"}, &stdout, &stderr); code != 1 {
		t.Errorf("bad address: code %d", code)
	}
	if stdout.String() != "" {
		t.Errorf("printed %q despite failing", stdout.String())
	}
}
