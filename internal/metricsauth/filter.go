// Package metricsauth protects the metrics endpoint: a scrape must carry a bearer token that the
// API server accepts (TokenReview), and its user must be allowed the request's verb on its path
// (SubjectAccessReview), e.g. "get" on "/metrics".
//
// It is hand-written, instead of using controller-runtime's filters.WithAuthenticationAndAuthorization,
// only because of that package's dependencies: it is built on k8s.io/apiserver's delegating
// authenticator and authorizer, which bring cel-go, OpenTelemetry, gRPC and more into the binary.
// Measured: a program that only imports it starts with 17 MB more RSS (15 MB of touched binary
// pages, 2 MB of heap from package initialisation); the manager binary is 78 MB with it and
// 49 MB without it (1104 packages instead of 850), and its RSS at start 48 MB instead of 30 MB.
// This package does the same with the typed client-go clients.
//
// As in the original: no anonymous access; token reviews time out after 10 s; transient API
// errors are retried with the same backoff (500 ms, ×1.5, 5 attempts); token reviews are cached
// for 1 minute, allowed decisions for 5 minutes and denied ones for 30 seconds. Differently: an
// invalid token is answered 401 (the original answers 500); subject access reviews time out
// after 10 s too; each cache holds at most cacheSize entries (the least recently used is evicted
// first); concurrent reviews of the same token are not merged into one; and only the
// Authorization header is read (not a WebSocket protocol header).
package metricsauth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/wait"
	authnclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authzclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

const (
	reviewTimeout = 10 * time.Second
	authnTTL      = time.Minute
	allowTTL      = 5 * time.Minute
	denyTTL       = 30 * time.Second
	// cacheSize bounds each cache, so that a flood of random tokens or paths cannot grow memory.
	cacheSize = 4096
)

// defaultBackoff is controller-runtime's (copied there from k8s.io/apiserver's
// DefaultAuthWebhookRetryBackoff).
var defaultBackoff = wait.Backoff{Duration: 500 * time.Millisecond, Factor: 1.5, Jitter: 0.2, Steps: 5}

// Filter is a metricsserver.Options.FilterProvider: it authenticates every request with a TokenReview and
// authorizes it with a SubjectAccessReview. The manager needs a ClusterRole allowing "create" on
// tokenreviews.authentication.k8s.io and subjectaccessreviews.authorization.k8s.io; a scraper
// needs one allowing "get" on the nonResourceURL "/metrics".
func Filter(config *rest.Config, httpClient *http.Client) (metricsserver.Filter, error) {
	authn, err := authnclient.NewForConfigAndClient(config, httpClient)
	if err != nil {
		return nil, err
	}
	authz, err := authzclient.NewForConfigAndClient(config, httpClient)
	if err != nil {
		return nil, err
	}
	return newAuthFilter(authn.TokenReviews(), authz.SubjectAccessReviews(), clock.RealClock{}).wrap, nil
}

type authFilter struct {
	tokenReviews authnclient.TokenReviewInterface
	accessReview authzclient.SubjectAccessReviewInterface
	backoff      wait.Backoff
	// users maps the SHA-256 of a token to its *authnv1.UserInfo, nil if not authenticated.
	users *cache.LRUExpireCache
	// decisions maps the SHA-256 of a SubjectAccessReviewSpec to its SubjectAccessReviewStatus.
	decisions *cache.LRUExpireCache
}

func newAuthFilter(tr authnclient.TokenReviewInterface, sar authzclient.SubjectAccessReviewInterface, clk cache.Clock) *authFilter {
	return &authFilter{
		tokenReviews: tr,
		accessReview: sar,
		backoff:      defaultBackoff,
		users:        cache.NewLRUExpireCacheWithClock(cacheSize, clk),
		decisions:    cache.NewLRUExpireCacheWithClock(cacheSize, clk),
	}
}

func (f *authFilter) wrap(log logr.Logger, next http.Handler) (http.Handler, error) {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		user, err := f.authenticate(req)
		if err != nil {
			log.Error(err, "Authentication failed")
			http.Error(w, "Authentication failed", http.StatusInternalServerError)
			return
		}
		if user == nil {
			log.V(4).Info("Authentication failed")
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}

		allowed, reason, err := f.authorize(req.Context(), user, strings.ToLower(req.Method), req.URL.Path)
		if err != nil {
			msg := fmt.Sprintf("Authorization for user %s failed", user.Username)
			log.Error(err, msg)
			http.Error(w, msg, http.StatusInternalServerError)
			return
		}
		if !allowed {
			msg := fmt.Sprintf("Authorization denied for user %s", user.Username)
			log.V(4).Info(msg, "reason", reason)
			http.Error(w, msg, http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, req)
	}), nil
}

// authenticate returns the user of the request's bearer token, nil if there is no token or the
// API server does not accept it, or an error if the API server could not be asked. On success
// it removes the Authorization header, so that no handler behind it sees the token.
func (f *authFilter) authenticate(req *http.Request) (*authnv1.UserInfo, error) {
	token := bearerToken(req.Header.Get("Authorization"))
	if token == "" {
		return nil, nil
	}
	key := hashKey([]byte(token))
	cached, ok := f.users.Get(key)
	if !ok {
		ctx, cancel := context.WithTimeout(req.Context(), reviewTimeout)
		defer cancel()
		var review *authnv1.TokenReview
		err := f.retry(ctx, func() (err error) {
			review, err = f.tokenReviews.Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("token review: %w", redact(err, token))
		}
		var user *authnv1.UserInfo
		if review.Status.Authenticated {
			user = withAuthenticatedGroup(review.Status.User)
		}
		f.users.Add(key, user, authnTTL)
		cached = user
	}
	user := cached.(*authnv1.UserInfo)
	if user != nil {
		req.Header.Del("Authorization")
	}
	return user, nil
}

// authorize asks whether user may do verb on the non-resource path.
func (f *authFilter) authorize(ctx context.Context, user *authnv1.UserInfo, verb, path string) (bool, string, error) {
	spec := authzv1.SubjectAccessReviewSpec{
		User:                  user.Username,
		UID:                   user.UID,
		Groups:                user.Groups,
		NonResourceAttributes: &authzv1.NonResourceAttributes{Path: path, Verb: verb},
	}
	if user.Extra != nil {
		spec.Extra = make(map[string]authzv1.ExtraValue, len(user.Extra))
		for k, v := range user.Extra {
			spec.Extra[k] = authzv1.ExtraValue(v)
		}
	}
	raw, err := json.Marshal(spec) // map keys are sorted: equal specs give equal keys
	if err != nil {
		return false, "", err
	}
	key := hashKey(raw)

	var status authzv1.SubjectAccessReviewStatus
	if cached, ok := f.decisions.Get(key); ok {
		status = cached.(authzv1.SubjectAccessReviewStatus)
	} else {
		ctx, cancel := context.WithTimeout(ctx, reviewTimeout)
		defer cancel()
		var review *authzv1.SubjectAccessReview
		err := f.retry(ctx, func() (err error) {
			review, err = f.accessReview.Create(ctx, &authzv1.SubjectAccessReview{Spec: spec}, metav1.CreateOptions{})
			return err
		})
		if err != nil {
			return false, "", fmt.Errorf("subject access review: %w", err)
		}
		status = review.Status
		ttl := denyTTL
		if status.Allowed {
			ttl = allowTTL
		}
		f.decisions.Add(key, status, ttl)
	}
	if status.Allowed && status.Denied {
		return false, status.Reason, errors.New("subject access review returned both allow and deny")
	}
	return status.Allowed, status.Reason, nil
}

// retry calls call until it succeeds, fails with an error that is not transient, or the backoff
// or ctx ends, as k8s.io/apiserver's webhook.WithExponentialBackoff does. It returns call's last
// error, if any.
func (f *authFilter) retry(ctx context.Context, call func() error) error {
	var callErr error
	err := wait.ExponentialBackoffWithContext(ctx, f.backoff, func(context.Context) (bool, error) {
		callErr = call()
		switch {
		case callErr == nil:
			return true, nil
		case transient(callErr):
			return false, nil
		default:
			return false, callErr
		}
	})
	if callErr != nil {
		return callErr
	}
	return err
}

// transient is k8s.io/apiserver's webhook.DefaultShouldRetry.
func transient(err error) bool {
	if utilnet.IsConnectionReset(err) || utilnet.IsHTTP2ConnectionLost(err) ||
		apierrors.IsInternalError(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) {
		return true
	}
	_, retry := apierrors.SuggestsClientDelay(err)
	return retry
}

// bearerToken parses an Authorization header as k8s.io/apiserver's bearertoken authenticator
// does: "Bearer <token>", the scheme in any case, exactly one space before the token.
func bearerToken(header string) string {
	parts := strings.SplitN(strings.TrimSpace(header), " ", 3)
	if len(parts) < 2 || strings.ToLower(parts[0]) != "bearer" {
		return ""
	}
	return parts[1]
}

// withAuthenticatedGroup adds system:authenticated to the user's groups, as k8s.io/apiserver's
// AuthenticatedGroupAdder does.
func withAuthenticatedGroup(u authnv1.UserInfo) *authnv1.UserInfo {
	if u.Username != "system:anonymous" &&
		!slices.Contains(u.Groups, "system:authenticated") && !slices.Contains(u.Groups, "system:unauthenticated") {
		u.Groups = append(slices.Clip(u.Groups), "system:authenticated")
	}
	return &u
}

func hashKey(b []byte) string {
	sum := sha256.Sum256(b)
	return string(sum[:])
}

// redact keeps the token out of an error that echoes it (e.g. a proxy that quotes the request).
func redact(err error, token string) error {
	if !strings.Contains(err.Error(), token) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), token, "[redacted]"))
}
