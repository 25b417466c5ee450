// Command fakeclerk serves the fake Clerk Backend API (users endpoints) of
// package clerkfake over HTTP, for demos, benchmarks and black-box tests.
//
//	fakeclerk --addr 127.0.0.1:8089 --seed users.json \
//	  --webhook-url http://127.0.0.1:8082/webhooks/clerk/default --webhook-secret whsec_...
//
// Clients use http://ADDR/v1 as the Clerk API URL and the --secret-key as
// their key; /_fake/stats, /_fake/reset and /_fake/faults control the fake.
// With --webhook-url and --webhook-secret it posts Svix-signed user.created,
// user.updated and user.deleted events for every change, as Clerk does
// (seeded users included).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kubeclerk/kubeclerk/internal/clerk/clerkfake"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run parses flags, serves until ctx is done, and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fakeclerk", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8089", "listen address")
	key := fs.String("secret-key", clerkfake.DefaultSecretKey, "the only secret key accepted (Authorization: Bearer <key>)")
	seed := fs.String("seed", "", "JSON file holding an array of (partial) Clerk User objects to start with")
	rateLimit := fs.Int("rate-limit", -1, "requests per 10 s per key; 0 = off; default: 100 for sk_test_ keys, 1000 for sk_live_ keys")
	perUser := fs.Int("per-user-rate-limit", clerkfake.DefaultPerUserRateLimit,
		"writes per 10 s per user on update and metadata routes; 0 = off")
	latency := fs.Duration("latency", 0, "latency added to every /v1 response")
	lockout := fs.Int64("lockout-seconds", -1,
		"lockout_expires_in_seconds set by POST /v1/users/{user_id}/lock; negative = null (never expires)")
	webhookURL := fs.String("webhook-url", "", "send Svix-signed user.* webhook events for every change to this URL; needs --webhook-secret")
	webhookSecret := fs.String("webhook-secret", "", "the webhook signing secret, whsec_<base64>; needs --webhook-url")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		logf(stderr, "fakeclerk: unexpected arguments: %v\n", fs.Args())
		return 2
	}
	if err := clerkfake.ValidateWebhookConfig(*webhookURL, *webhookSecret); err != nil {
		logf(stderr, "fakeclerk: --webhook-url/--webhook-secret: %v\n", err)
		return 2
	}

	opts := clerkfake.Options{SecretKey: *key, RateLimit: *rateLimit, PerUserRateLimit: *perUser, Latency: *latency,
		WebhookURL: *webhookURL, WebhookSecret: *webhookSecret}
	if *lockout >= 0 {
		opts.LockoutSeconds = lockout
	}
	srv := clerkfake.New(opts)
	defer func() { _ = srv.Close() }() // stops the webhook sender; pending events are lost
	if *seed != "" {
		if err := srv.SeedFile(*seed); err != nil {
			logf(stderr, "fakeclerk: %v\n", err)
			return 1
		}
	}

	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", *addr)
	if err != nil {
		logf(stderr, "fakeclerk: %v\n", err)
		return 1
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	logf(stdout, "listening on http://%s/v1\n", ln.Addr())

	select {
	case err := <-errc:
		logf(stderr, "fakeclerk: %v\n", err)
		return 1
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logf(stderr, "fakeclerk: shutdown: %v\n", err)
		return 1
	}
	return 0
}

// logf prints to the command's stdout or stderr. A failed write there
// leaves nowhere better to report it, so its error is deliberately dropped.
func logf(w io.Writer, format string, args ...any) {
	_, _ = fmt.Fprintf(w, format, args...)
}
