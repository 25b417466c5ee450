package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	svix "github.com/svix/svix-webhooks/go"
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

// testWebhookSecret is a Svix signing secret: "whsec_" and base64.
const testWebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func TestWebhooks(t *testing.T) {
	var mu sync.Mutex
	var events []map[string]any
	var verifyErrs []error
	wh, err := svix.NewWebhook(testWebhookSecret)
	if err != nil {
		t.Fatal(err)
	}
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev map[string]any
		_ = json.Unmarshal(body, &ev)
		mu.Lock()
		events = append(events, ev)
		if err := wh.Verify(body, r.Header); err != nil {
			verifyErrs = append(verifyErrs, err)
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	received := func(n int) []map[string]any {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			got := append([]map[string]any(nil), events...)
			mu.Unlock()
			if len(got) >= n {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d webhook events, want %d", len(got), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	seed := writeFile(t, `[{"id":"user_seeded","username":"seeded"}]`)
	url, stop := start(t, "--addr", "127.0.0.1:0", "--seed", seed,
		"--webhook-url", rc.URL+"/webhooks/clerk/default", "--webhook-secret", testWebhookSecret)
	got := received(1)
	if got[0]["type"] != "user.created" || got[0]["data"].(map[string]any)["id"] != "user_seeded" {
		t.Errorf("seed event: %v", got[0])
	}

	req, _ := http.NewRequestWithContext(t.Context(), "DELETE", url+"/users/user_seeded", nil)
	req.Header.Set("Authorization", "Bearer sk_test_fake")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	got = received(2)
	want := map[string]any{"deleted": true, "id": "user_seeded", "object": "user"}
	if got[1]["type"] != "user.deleted" || !reflect.DeepEqual(got[1]["data"], want) {
		t.Errorf("delete event: %v", got[1])
	}
	mu.Lock()
	if len(verifyErrs) > 0 {
		t.Errorf("signatures: %v", verifyErrs)
	}
	mu.Unlock()

	var st struct {
		Webhooks struct {
			Queued int64 `json:"queued"`
			Sent   int64 `json:"sent"`
		} `json:"webhooks"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for st.Webhooks.Sent != 2 && time.Now().Before(deadline) {
		_, _, body := get(t, strings.TrimSuffix(url, "/v1")+"/_fake/stats", "")
		_ = json.Unmarshal(body, &st)
		time.Sleep(5 * time.Millisecond)
	}
	if st.Webhooks.Queued != 2 || st.Webhooks.Sent != 2 {
		t.Errorf("webhook stats %+v", st.Webhooks)
	}
	if code := stop(); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

func TestBadWebhookFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--webhook-url", "http://127.0.0.1:1/hooks"}, "set together"},
		{[]string{"--webhook-secret", testWebhookSecret}, "set together"},
		{[]string{"--webhook-url", "http://127.0.0.1:1/hooks", "--webhook-secret", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, `start with "whsec_"`},
		{[]string{"--webhook-url", "http://127.0.0.1:1/hooks", "--webhook-secret", "whsec_%%%"}, "not valid base64"},
		{[]string{"--webhook-url", "127.0.0.1:1/hooks", "--webhook-secret", testWebhookSecret}, "http or https"},
	} {
		var stdout, stderr syncBuffer
		code := run(context.Background(), append([]string{"--addr", "127.0.0.1:0"}, c.args...), &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), c.want) || stdout.String() != "" {
			t.Errorf("%v: code %d stdout %q stderr %q, want 2 and %q", c.args, code, stdout.String(), stderr.String(), c.want)
		}
	}
}
