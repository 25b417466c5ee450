package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubeclerk/kubeclerk/internal/clerk/clerkfake"
)

// fakeClerk is the fake Clerk API served by the demo process itself (the same server as
// cmd/fakeclerk), so that the demo can read users without making API calls of its own and can
// tell kubeclerk's calls from everyone else's by User-Agent.
type fakeClerk struct {
	srv  *clerkfake.Server
	http *http.Server
	addr string // host:port it listens on
	log  io.Writer

	mu        sync.Mutex
	kubeclerk callCounts
	others    callCounts
	// watched are lowercased values (identifiers of refused ClerkUsers) whose appearance in a
	// request's path, query or body is counted in mentions.
	watched  []string
	mentions map[string]int64
}

// listenPreferred listens on preferred; when that address is taken and fallback is set, it
// listens on a free port of the same host instead and reports moved.
func listenPreferred(ctx context.Context, preferred string, fallback bool) (ln net.Listener, moved bool, err error) {
	var lc net.ListenConfig
	ln, err = lc.Listen(ctx, "tcp", preferred)
	if err == nil {
		return ln, false, nil
	}
	if !fallback || !errors.Is(err, syscall.EADDRINUSE) {
		return nil, false, err
	}
	host, _, splitErr := net.SplitHostPort(preferred)
	if splitErr != nil {
		return nil, false, err
	}
	ln, err2 := lc.Listen(ctx, "tcp", net.JoinHostPort(host, "0"))
	if err2 != nil {
		return nil, false, errors.Join(err, err2)
	}
	return ln, true, nil
}

// freeLocalAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeLocalAddr(ctx context.Context) (string, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// startFakeClerk seeds a fake Clerk API from seedFile and serves it on ln. With webhookURL and
// webhookSecret set, it sends a signed webhook for every change of a user to webhookURL.
func startFakeClerk(ln net.Listener, seedFile string, requestLog io.Writer, webhookURL, webhookSecret string) (*fakeClerk, error) {
	if err := clerkfake.ValidateWebhookConfig(webhookURL, webhookSecret); err != nil {
		return nil, err
	}
	srv := clerkfake.New(clerkfake.Options{
		SecretKey:        clerkfake.DefaultSecretKey,
		RateLimit:        -1, // Clerk's limit for sk_test_ keys, as cmd/fakeclerk
		PerUserRateLimit: clerkfake.DefaultPerUserRateLimit,
		WebhookURL:       webhookURL,
		WebhookSecret:    webhookSecret,
	})
	if err := srv.SeedFile(seedFile); err != nil {
		_ = srv.Close()
		return nil, err
	}
	f := &fakeClerk{srv: srv, addr: ln.Addr().String(), log: requestLog,
		kubeclerk: callCounts{}, others: callCounts{}}
	f.http = &http.Server{Handler: f, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = f.http.Serve(ln) }()
	return f, nil
}

// apiURL is the Clerk Backend API base URL of the fake.
func (f *fakeClerk) apiURL() string { return "http://" + f.addr + "/v1" }

// ServeHTTP serves the fake and counts and logs every /v1 call.
func (f *fakeClerk) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/v1/") && r.URL.Path != "/v1" {
		f.srv.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	f.noteMentions(r)
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	f.srv.ServeHTTP(rec, r)
	route := r.Method + " " + routeTemplate(r.URL.Path)
	caller := "other"
	ua := r.Header.Get("User-Agent")
	f.mu.Lock()
	if strings.HasPrefix(ua, "kubeclerk/") {
		caller = "kubeclerk"
		f.kubeclerk[callKey{route, rec.status}]++
	} else {
		f.others[callKey{route, rec.status}]++
	}
	_, _ = fmt.Fprintf(f.log, "%s %-9s %-6s %-45s %d %s\n", start.Format("15:04:05.000"), caller, r.Method, r.URL.RequestURI(),
		rec.status, time.Since(start).Round(100*time.Microsecond))
	f.mu.Unlock()
}

// watch starts counting the requests that name any of values (case-insensitively) in their path,
// query or body; mentioned returns the count.
func (f *fakeClerk) watch(values ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mentions == nil {
		f.mentions = map[string]int64{}
	}
	for _, v := range values {
		if v = strings.ToLower(v); v != "" && !slices.Contains(f.watched, v) {
			f.watched = append(f.watched, v)
		}
	}
}

// mentioned returns how many requests named one of values since it was passed to watch.
func (f *fakeClerk) mentioned(values ...string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	for _, v := range values {
		n += f.mentions[strings.ToLower(v)]
	}
	return n
}

// noteMentions counts r for each watched value it names; it reads the body and puts it back.
func (f *fakeClerk) noteMentions(r *http.Request) {
	f.mu.Lock()
	watched := f.watched
	f.mu.Unlock()
	if len(watched) == 0 {
		return
	}
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
		_ = r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	text := requestText(r.URL, body)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range watched {
		if strings.Contains(text, v) {
			f.mentions[v]++
		}
	}
}

// requestText is what a request says, lowercased and unescaped: its path, query and body.
func requestText(u *url.URL, body []byte) string {
	q, err := url.QueryUnescape(u.RawQuery)
	if err != nil {
		q = u.RawQuery
	}
	return strings.ToLower(u.Path + "?" + q + "\n" + string(body))
}

// calls returns copies of the call counters: kubeclerk's and everyone else's.
func (f *fakeClerk) calls() (kubeclerk, others callCounts) {
	f.mu.Lock()
	defer f.mu.Unlock()
	kubeclerk, others = callCounts{}, callCounts{}
	maps.Copy(kubeclerk, f.kubeclerk)
	maps.Copy(others, f.others)
	return kubeclerk, others
}

// user returns what the fake holds for id, without making an API call; nil when there is no such user.
func (f *fakeClerk) user(id string) *clerkState {
	if id == "" {
		return nil
	}
	raw, ok := f.srv.User(id)
	if !ok {
		return nil
	}
	s, err := parseClerkUser(raw)
	if err != nil {
		return nil
	}
	return s
}

func (f *fakeClerk) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := f.http.Shutdown(ctx); err != nil {
		_ = f.http.Close()
	}
	_ = f.srv.Close() // stops the webhook sender
}

// routeTemplate maps a request path to the API's path template: /v1/users/user_123/ban →
// /v1/users/{user_id}/ban, as GET /_fake/stats names routes.
func routeTemplate(path string) string {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	if len(segs) >= 3 && segs[0] == "v1" && segs[1] == "users" && segs[2] != "count" {
		segs[2] = "{user_id}"
	}
	return "/" + strings.Join(segs, "/")
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Hijack lets the fake drop connections (fault injection through /_fake/faults).
func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := s.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("hijacking not supported")
	}
	s.status = 0
	return hj.Hijack()
}
