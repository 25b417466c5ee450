package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/kubeclerk/kubeclerk/internal/controller"
	"github.com/kubeclerk/kubeclerk/internal/metrics"
	"github.com/kubeclerk/kubeclerk/internal/webhook"
)

// readWebhookSecret returns the webhook signing secret (whsec_…) of the manager's own key from
// file, or "" when no file is given. Errors never contain the secret.
func readWebhookSecret(file string) (string, error) {
	if file == "" {
		return "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read --clerk-webhook-secret-file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if !strings.HasPrefix(s, webhook.SecretPrefix) {
		return "", fmt.Errorf("--clerk-webhook-secret-file %s does not hold a webhook signing secret (whsec_…); "+
			"copy the endpoint's Signing Secret from the Clerk Dashboard (Webhooks)", file)
	}
	return s, nil
}

// webhookServer serves Clerk's webhooks on addr while this manager leads (only the leader's
// reconciles run, so only it may take events): a manager.Runnable.
type webhookServer struct {
	addr     string
	receiver *webhook.Receiver
	log      logr.Logger
}

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (s *webhookServer) NeedLeaderElection() bool { return true }

// Start serves until ctx ends, then drains for up to 10 s.
func (s *webhookServer) Start(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.Handle(webhook.Path, s.receiver)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, MaxHeaderBytes: 64 << 10,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listen for webhooks on %s: %w", s.addr, err)
	}
	s.log.Info("Serving Clerk webhooks", "address", ln.Addr().String(), "path", webhook.Path+"{instance}")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// newWebhookServer builds the receiver: the manager's own secret for "default", each
// ClerkInstance's from its spec.webhookSecretRef; verified events go to the ClerkUser reconciler.
func newWebhookServer(addr, ownSecret string, users *controller.ClerkUserReconciler,
	instances *controller.ClerkInstanceReconciler, m *metrics.Metrics, log logr.Logger) manager.Runnable {
	secrets := func(name string) (string, bool) {
		if name == webhook.DefaultInstance {
			return ownSecret, ownSecret != ""
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return instances.WebhookSecret(ctx, name)
	}
	return &webhookServer{addr: addr, log: log, receiver: &webhook.Receiver{
		Secrets: secrets,
		Metrics: m,
		Log:     log,
		Deliver: func(ctx context.Context, e webhook.Event) {
			users.ClerkEvent(ctx, e.Instance, e.Type, e.UserID, e.User)
		},
	}}
}
