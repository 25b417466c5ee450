package main

import (
	"bytes"
	"context"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// htmlUnavailable is the body of the 503s the proxy injects: what a load balancer in front of
// Clerk sends, not Clerk's JSON.
const htmlUnavailable = "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n" +
	"<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n"

// proxy stands between the manager replicas and the fake Clerk API and records every request:
// which replica sent it (each replica slot has its own port), when, on which route and user,
// and what Clerk answered. It never changes a request; it can answer a share of them itself
// with an HTML 503, as a load balancer would. A response the fake dropped is dropped here too.
type proxy struct {
	upstream  *url.URL
	transport *http.Transport
	servers   []*http.Server
	addrs     []string

	html503    atomic.Uint64 // math.Float64bits of the rate of injected HTML 503s
	dropWrites atomic.Uint64 // math.Float64bits of the rate of dropped responses of applied writes

	mu    sync.Mutex
	calls []Call
	last  atomic.Int64 // time of the last call, Unix ns
}

// startProxy listens on one port per replica slot and forwards to upstream.
func startProxy(upstream string, slots int) (*proxy, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, err
	}
	p := &proxy{upstream: u,
		// A fresh connection per request: a transport error then means the fake dropped the
		// response of a request it applied, never a stale keep-alive connection.
		transport: &http.Transport{DisableKeepAlives: true, ResponseHeaderTimeout: time.Minute}}
	for slot := range slots {
		ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
		if err != nil {
			p.close()
			return nil, err
		}
		srv := &http.Server{Handler: p.handler(slot), ReadHeaderTimeout: 10 * time.Second}
		p.servers = append(p.servers, srv)
		p.addrs = append(p.addrs, ln.Addr().String())
		go func() { _ = srv.Serve(ln) }()
	}
	return p, nil
}

// url returns the Clerk API URL a replica in slot uses.
func (p *proxy) url(slot int) string { return "http://" + p.addrs[slot] + "/v1" }

func (p *proxy) close() {
	for _, s := range p.servers {
		_ = s.Close()
	}
}

// setHTML503 sets the share of requests answered with an HTML 503.
func (p *proxy) setHTML503(rate float64) {
	p.html503.Store(math.Float64bits(rate))
}

// setDropWrites sets the share of write responses dropped after Clerk applied the write.
func (p *proxy) setDropWrites(rate float64) {
	p.dropWrites.Store(math.Float64bits(rate))
}

// snapshot returns the calls recorded so far.
func (p *proxy) snapshot() []Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

func (p *proxy) record(c Call) {
	p.mu.Lock()
	p.calls = append(p.calls, c)
	p.mu.Unlock()
	p.last.Store(c.At.UnixNano())
}

// lastCall returns when the last call arrived.
func (p *proxy) lastCall() time.Time { return time.Unix(0, p.last.Load()) }

func (p *proxy) handler(slot int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := Call{At: time.Now(), Slot: slot, Method: r.Method}
		c.Route, c.UserID = routeOf(r.Method, r.URL.Path)
		if r.Method == http.MethodGet && c.UserID == "" {
			q := r.URL.Query()
			c.Batch = q["user_id"]
			for _, v := range q["external_id"] {
				c.Lookup = append(c.Lookup, "externalID:"+strings.TrimPrefix(v, "+"))
			}
			for _, v := range q["email_address"] {
				c.Lookup = append(c.Lookup, "email:"+strings.ToLower(v))
			}
			for _, v := range q["username"] {
				c.Lookup = append(c.Lookup, "username:"+strings.ToLower(v))
			}
		}
		if chance(&p.html503) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, htmlUnavailable)
			c.Status = http.StatusServiceUnavailable
			p.record(c)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if c.isWrite() {
			c.Body = string(body[:min(len(body), 1024)])
		}
		target := *p.upstream
		target.Path, target.RawPath, target.RawQuery = r.URL.Path, r.URL.RawPath, r.URL.RawQuery
		// The fake carries a request out even when the replica is gone (killed): so does the
		// proxy, to record what Clerk did.
		out, err := http.NewRequestWithContext(context.WithoutCancel(r.Context()), r.Method, target.String(), bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		out.Header = r.Header.Clone()
		resp, err := p.transport.RoundTrip(out)
		if err != nil {
			// The fake applied the request and closed the connection: do the same.
			c.Status, c.Lost = 0, true
			p.record(c)
			dropConnection(w)
			return
		}
		defer func() { _ = resp.Body.Close() }()
		data, err := io.ReadAll(resp.Body)
		c.Status = resp.StatusCode
		c.Lost = err != nil || c.isWrite() && chance(&p.dropWrites)
		p.record(c)
		if c.Lost {
			dropConnection(w)
			return
		}
		maps.Copy(w.Header(), resp.Header)
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(data)
	})
}

// dropConnection closes the client's connection without an answer.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// chance draws true with the probability stored in rate (math.Float64bits).
func chance(rate *atomic.Uint64) bool {
	r := math.Float64frombits(rate.Load())
	return r > 0 && rand.Float64() < r //nolint:gosec // fault injection needs no cryptographic randomness
}
