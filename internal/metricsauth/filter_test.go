package metricsauth

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
	testingclock "k8s.io/utils/clock/testing"
)

// The fake API server knows two tokens: readerToken's user may get /metrics, strangerToken's
// user may do nothing. Every other token is invalid.
const (
	readerToken   = "reader-token-6b1f0c2e9d"
	strangerToken = "stranger-token-a93e51"
	invalidToken  = "invalid-token-0d4c77"
)

var readerUser = authnv1.UserInfo{
	Username: "reader",
	UID:      "uid-1",
	Groups:   []string{"scrapers"},
	Extra:    map[string]authnv1.ExtraValue{"scopes": {"metrics"}},
}

// env is a filter in front of a handler, talking to a fake clientset with a fake clock and a
// zero retry backoff. It records the reviews made, the log lines and the responses.
type env struct {
	t      *testing.T
	g      *WithT
	clock  *testingclock.FakeClock
	filter *authFilter
	h      http.Handler

	mu            sync.Mutex
	tokenReviews  []authnv1.TokenReviewSpec
	accessReviews []authzv1.SubjectAccessReviewSpec
	logs          []string
	bodies        []string
	innerCalls    int
	innerAuth     []string // the Authorization headers the inner handler saw

	// authn and authz answer the reviews; tests replace them.
	authn func(token string) (authnv1.TokenReviewStatus, error)
	authz func(spec authzv1.SubjectAccessReviewSpec) (authzv1.SubjectAccessReviewStatus, error)
}

func newEnv(t *testing.T) *env {
	e := &env{t: t, g: NewWithT(t), clock: testingclock.NewFakeClock(time.Now())}
	e.authn = func(token string) (authnv1.TokenReviewStatus, error) {
		switch token {
		case readerToken:
			return authnv1.TokenReviewStatus{Authenticated: true, User: readerUser}, nil
		case strangerToken:
			return authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: "stranger"}}, nil
		}
		return authnv1.TokenReviewStatus{Error: "invalid bearer token"}, nil
	}
	e.authz = func(spec authzv1.SubjectAccessReviewSpec) (authzv1.SubjectAccessReviewStatus, error) {
		na := spec.NonResourceAttributes
		if spec.User == "reader" && na.Verb == "get" && na.Path == "/metrics" {
			return authzv1.SubjectAccessReviewStatus{Allowed: true, Reason: "bound to metrics-reader"}, nil
		}
		return authzv1.SubjectAccessReviewStatus{Reason: "no RBAC policy matched"}, nil
	}

	cs := fake.NewClientset()
	cs.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		tr := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview).DeepCopy()
		e.mu.Lock()
		e.tokenReviews = append(e.tokenReviews, tr.Spec)
		authn := e.authn
		e.mu.Unlock()
		status, err := authn(tr.Spec.Token)
		tr.Status = status
		return true, tr, err
	})
	cs.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sar := a.(k8stesting.CreateAction).GetObject().(*authzv1.SubjectAccessReview).DeepCopy()
		e.mu.Lock()
		e.accessReviews = append(e.accessReviews, sar.Spec)
		authz := e.authz
		e.mu.Unlock()
		status, err := authz(sar.Spec)
		sar.Status = status
		return true, sar, err
	})

	e.filter = newAuthFilter(cs.AuthenticationV1().TokenReviews(), cs.AuthorizationV1().SubjectAccessReviews(), e.clock)
	e.filter.backoff = wait.Backoff{Steps: defaultBackoff.Steps} // retry at once
	e.h = wrapWithLog(t, e.filter, &e.mu, &e.logs, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		e.mu.Lock()
		e.innerCalls++
		e.innerAuth = append(e.innerAuth, req.Header.Get("Authorization"))
		e.mu.Unlock()
		_, _ = io.WriteString(w, "metrics")
	}))

	// Whatever a test did: no token in a log line, a response, or the inner handler's request.
	t.Cleanup(func() {
		for _, tok := range []string{readerToken, strangerToken, invalidToken} {
			for _, line := range e.logs {
				e.g.Expect(line).NotTo(ContainSubstring(tok), "log line")
			}
			for _, body := range e.bodies {
				e.g.Expect(body).NotTo(ContainSubstring(tok), "response")
			}
			for _, h := range e.innerAuth {
				e.g.Expect(h).NotTo(ContainSubstring(tok), "inner handler's Authorization header")
			}
		}
	})
	return e
}

// wrapWithLog wraps next with f, logging to *logs at every verbosity.
func wrapWithLog(t *testing.T, f *authFilter, mu *sync.Mutex, logs *[]string, next http.Handler) http.Handler {
	t.Helper()
	log := funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		*logs = append(*logs, prefix+" "+args)
	}, funcr.Options{Verbosity: 10})
	h, err := f.wrap(log, next)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// do serves one request with the Authorization header auth ("": none).
func (e *env) do(method, path, auth string) *httptest.ResponseRecorder {
	req := httptest.NewRequestWithContext(e.t.Context(), method, path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	e.mu.Lock()
	e.bodies = append(e.bodies, rec.Body.String())
	e.mu.Unlock()
	return rec
}

func (e *env) get(token string) *httptest.ResponseRecorder {
	return e.do(http.MethodGet, "/metrics", "Bearer "+token)
}

// reviews returns the numbers of TokenReviews and SubjectAccessReviews made so far.
func (e *env) reviews() (int, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.tokenReviews), len(e.accessReviews)
}

func (e *env) expectReviews(tokenReviews, accessReviews int) {
	e.t.Helper()
	tr, sar := e.reviews()
	e.g.Expect(tr).To(Equal(tokenReviews), "TokenReviews")
	e.g.Expect(sar).To(Equal(accessReviews), "SubjectAccessReviews")
}

func TestAllowed(t *testing.T) {
	e := newEnv(t)
	rec := e.get(readerToken)
	e.g.Expect(rec.Code).To(Equal(http.StatusOK))
	e.g.Expect(rec.Body.String()).To(Equal("metrics"))
	e.g.Expect(e.innerCalls).To(Equal(1))
	e.g.Expect(e.innerAuth).To(Equal([]string{""}), "the Authorization header is removed once authenticated")

	e.expectReviews(1, 1)
	e.g.Expect(e.tokenReviews[0]).To(Equal(authnv1.TokenReviewSpec{Token: readerToken}))
	e.g.Expect(e.accessReviews[0]).To(Equal(authzv1.SubjectAccessReviewSpec{
		User:                  "reader",
		UID:                   "uid-1",
		Groups:                []string{"scrapers", "system:authenticated"},
		Extra:                 map[string]authzv1.ExtraValue{"scopes": {"metrics"}},
		NonResourceAttributes: &authzv1.NonResourceAttributes{Path: "/metrics", Verb: "get"},
	}))
}

func TestNoAuthorizationHeader(t *testing.T) {
	e := newEnv(t)
	rec := e.do(http.MethodGet, "/metrics", "")
	e.g.Expect(rec.Code).To(Equal(http.StatusUnauthorized))
	e.g.Expect(rec.Body.String()).To(Equal("Unauthorized\n"))
	e.g.Expect(e.innerCalls).To(BeZero())
	e.expectReviews(0, 0)
}

func TestMalformedAuthorizationHeader(t *testing.T) {
	for _, auth := range []string{
		"Basic cmVhZGVyOnNlY3JldA==",
		"Bearer",
		"Bearer ",
		"Bearer  " + readerToken, // two spaces: an empty token, as in k8s.io/apiserver
		"Bearer\t" + readerToken,
		"Token " + readerToken,
		readerToken,
	} {
		t.Run(auth, func(t *testing.T) {
			e := newEnv(t)
			rec := e.do(http.MethodGet, "/metrics", auth)
			e.g.Expect(rec.Code).To(Equal(http.StatusUnauthorized))
			e.g.Expect(e.innerCalls).To(BeZero())
			e.expectReviews(0, 0)
		})
	}
}

func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	for _, auth := range []string{"bearer " + readerToken, "BEARER " + readerToken, "  Bearer " + readerToken + "  "} {
		t.Run(auth, func(t *testing.T) {
			e := newEnv(t)
			e.g.Expect(e.do(http.MethodGet, "/metrics", auth).Code).To(Equal(http.StatusOK))
			e.g.Expect(e.tokenReviews).To(Equal([]authnv1.TokenReviewSpec{{Token: readerToken}}))
		})
	}
}

func TestInvalidToken(t *testing.T) {
	e := newEnv(t)
	rec := e.get(invalidToken)
	e.g.Expect(rec.Code).To(Equal(http.StatusUnauthorized))
	e.g.Expect(rec.Body.String()).To(Equal("Unauthorized\n"))
	e.g.Expect(e.innerCalls).To(BeZero())
	e.expectReviews(1, 0)
}

func TestDenied(t *testing.T) {
	e := newEnv(t)
	rec := e.get(strangerToken)
	e.g.Expect(rec.Code).To(Equal(http.StatusForbidden))
	e.g.Expect(rec.Body.String()).To(Equal("Authorization denied for user stranger\n"))
	e.g.Expect(e.innerCalls).To(BeZero())
	e.expectReviews(1, 1)
	e.g.Expect(e.logs).To(ContainElement(SatisfyAll(
		ContainSubstring(`"level"=4`), ContainSubstring("Authorization denied for user stranger"),
		ContainSubstring("no RBAC policy matched"))))
}

func TestVerbIsTheLowercaseMethod(t *testing.T) {
	e := newEnv(t)
	rec := e.do(http.MethodPost, "/metrics", "Bearer "+readerToken)
	e.g.Expect(rec.Code).To(Equal(http.StatusForbidden), "reader may only get")
	e.g.Expect(e.accessReviews).To(HaveLen(1))
	e.g.Expect(*e.accessReviews[0].NonResourceAttributes).To(Equal(authzv1.NonResourceAttributes{Path: "/metrics", Verb: "post"}))
}

func TestAuthenticatedGroup(t *testing.T) {
	g := NewWithT(t)
	for _, tc := range []struct {
		user   authnv1.UserInfo
		groups []string
	}{
		{authnv1.UserInfo{Username: "a"}, []string{"system:authenticated"}},
		{authnv1.UserInfo{Username: "a", Groups: []string{"x"}}, []string{"x", "system:authenticated"}},
		{authnv1.UserInfo{Username: "a", Groups: []string{"system:authenticated", "x"}}, []string{"system:authenticated", "x"}},
		{authnv1.UserInfo{Username: "a", Groups: []string{"system:unauthenticated"}}, []string{"system:unauthenticated"}},
		{authnv1.UserInfo{Username: "system:anonymous"}, nil},
	} {
		g.Expect(withAuthenticatedGroup(tc.user).Groups).To(Equal(tc.groups), tc.user.Username, tc.user.Groups)
	}
}

func TestTokenReviewErrors(t *testing.T) {
	gr := schema.GroupResource{Group: "authentication.k8s.io", Resource: "tokenreviews"}
	for _, tc := range []struct {
		err   error
		calls int // 1: not retried; 5: retried until the backoff ends
	}{
		{apierrors.NewInternalError(fmt.Errorf("etcd is sad")), 5},
		{apierrors.NewTooManyRequests("slow down", 1), 5},
		{apierrors.NewTimeoutError("timeout", 1), 5},
		{apierrors.NewServiceUnavailable("starting"), 1},
		{apierrors.NewForbidden(gr, "", fmt.Errorf("RBAC")), 1},
		{apierrors.NewBadRequest("bad"), 1},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			e := newEnv(t)
			working := e.authn
			e.authn = func(string) (authnv1.TokenReviewStatus, error) { return authnv1.TokenReviewStatus{}, tc.err }
			rec := e.get(readerToken)
			e.g.Expect(rec.Code).To(Equal(http.StatusInternalServerError))
			e.g.Expect(rec.Body.String()).To(Equal("Authentication failed\n"))
			e.g.Expect(e.innerCalls).To(BeZero())
			e.expectReviews(tc.calls, 0)
			e.g.Expect(e.logs).To(ContainElement(SatisfyAll(ContainSubstring("Authentication failed"), ContainSubstring(tc.err.Error()))))

			// Errors are not cached: once the API server is back, the next request succeeds.
			e.authn = working
			e.g.Expect(e.get(readerToken).Code).To(Equal(http.StatusOK))
			e.expectReviews(tc.calls+1, 1)
		})
	}
}

func TestAccessReviewError(t *testing.T) {
	e := newEnv(t)
	working := e.authz
	e.authz = func(authzv1.SubjectAccessReviewSpec) (authzv1.SubjectAccessReviewStatus, error) {
		return authzv1.SubjectAccessReviewStatus{}, apierrors.NewInternalError(fmt.Errorf("etcd is sad"))
	}
	rec := e.get(readerToken)
	e.g.Expect(rec.Code).To(Equal(http.StatusInternalServerError))
	e.g.Expect(rec.Body.String()).To(Equal("Authorization for user reader failed\n"))
	e.g.Expect(e.innerCalls).To(BeZero())
	e.expectReviews(1, 5)
	e.g.Expect(e.logs).To(ContainElement(SatisfyAll(ContainSubstring("Authorization for user reader failed"), ContainSubstring("etcd is sad"))))

	e.authz = working
	e.g.Expect(e.get(readerToken).Code).To(Equal(http.StatusOK), "errors are not cached")
	e.expectReviews(1, 6)
}

func TestAllowedAndDeniedIsAnError(t *testing.T) {
	e := newEnv(t)
	e.authz = func(authzv1.SubjectAccessReviewSpec) (authzv1.SubjectAccessReviewStatus, error) {
		return authzv1.SubjectAccessReviewStatus{Allowed: true, Denied: true}, nil
	}
	e.g.Expect(e.get(readerToken).Code).To(Equal(http.StatusInternalServerError))
	e.g.Expect(e.innerCalls).To(BeZero())
}

func TestAllowedIsCached(t *testing.T) {
	e := newEnv(t)
	e.g.Expect(e.get(readerToken).Code).To(Equal(http.StatusOK))
	e.g.Expect(e.get(readerToken).Code).To(Equal(http.StatusOK))
	e.expectReviews(1, 1)

	e.clock.Step(authnTTL - time.Second)
	e.g.Expect(e.get(readerToken).Code).To(Equal(http.StatusOK))
	e.expectReviews(1, 1)

	e.clock.Step(2 * time.Second) // the token review has expired, the decision has not
	e.g.Expect(e.get(readerToken).Code).To(Equal(http.StatusOK))
	e.expectReviews(2, 1)

	e.clock.Step(allowTTL - authnTTL) // both have expired
	e.g.Expect(e.get(readerToken).Code).To(Equal(http.StatusOK))
	e.expectReviews(3, 2)
	e.g.Expect(e.innerCalls).To(Equal(5))
}

func TestDeniedIsCachedFor30s(t *testing.T) {
	e := newEnv(t)
	e.g.Expect(e.get(strangerToken).Code).To(Equal(http.StatusForbidden))
	e.expectReviews(1, 1)

	// The stranger is granted access; the denial is remembered for 30 s.
	e.authz = func(authzv1.SubjectAccessReviewSpec) (authzv1.SubjectAccessReviewStatus, error) {
		return authzv1.SubjectAccessReviewStatus{Allowed: true}, nil
	}
	e.clock.Step(denyTTL - time.Second)
	e.g.Expect(e.get(strangerToken).Code).To(Equal(http.StatusForbidden))
	e.expectReviews(1, 1)

	e.clock.Step(2 * time.Second)
	e.g.Expect(e.get(strangerToken).Code).To(Equal(http.StatusOK))
	e.expectReviews(1, 2)
}

func TestDecisionsAreCachedPerVerbAndPath(t *testing.T) {
	e := newEnv(t)
	e.g.Expect(e.get(readerToken).Code).To(Equal(http.StatusOK))
	e.g.Expect(e.do(http.MethodGet, "/other", "Bearer "+readerToken).Code).To(Equal(http.StatusForbidden))
	e.g.Expect(e.do(http.MethodHead, "/metrics", "Bearer "+readerToken).Code).To(Equal(http.StatusForbidden))
	e.g.Expect(e.get(strangerToken).Code).To(Equal(http.StatusForbidden))
	e.expectReviews(2, 4)
}

func TestUnauthenticatedIsCachedFor1m(t *testing.T) {
	e := newEnv(t)
	e.g.Expect(e.get(invalidToken).Code).To(Equal(http.StatusUnauthorized))
	e.clock.Step(authnTTL - time.Second)
	e.g.Expect(e.get(invalidToken).Code).To(Equal(http.StatusUnauthorized))
	e.expectReviews(1, 0)

	e.clock.Step(2 * time.Second)
	e.g.Expect(e.get(invalidToken).Code).To(Equal(http.StatusUnauthorized))
	e.expectReviews(2, 0)
}

func TestCachesAreBounded(t *testing.T) {
	e := newEnv(t)
	for i := range 3 * cacheSize {
		tok := fmt.Sprintf("random-token-%d", i)
		e.g.Expect(e.get(tok).Code).To(Equal(http.StatusUnauthorized))
	}
	keys := e.filter.users.Keys()
	e.g.Expect(keys).To(HaveLen(cacheSize))
	for _, k := range keys {
		e.g.Expect(k).To(HaveLen(sha256Len), "a hash, not the token")
		e.g.Expect(k).NotTo(HavePrefix("random-token-"))
	}

	for i := range 2 * cacheSize {
		e.g.Expect(e.do(http.MethodGet, fmt.Sprintf("/metrics/%d", i), "Bearer "+readerToken).Code).To(Equal(http.StatusForbidden))
	}
	e.g.Expect(e.filter.decisions.Keys()).To(HaveLen(cacheSize))

	// The most recently used entries are the ones kept.
	e.expectReviews(3*cacheSize+1, 2*cacheSize)
	e.g.Expect(e.do(http.MethodGet, fmt.Sprintf("/metrics/%d", 2*cacheSize-1), "Bearer "+readerToken).Code).
		To(Equal(http.StatusForbidden))
	e.expectReviews(3*cacheSize+1, 2*cacheSize)
}

const sha256Len = 32

func TestConcurrentRequests(t *testing.T) {
	e := newEnv(t)
	var wg sync.WaitGroup
	codes := make([]int, 64)
	for i := range codes {
		wg.Go(func() {
			tok := readerToken
			if i%2 == 1 {
				tok = strangerToken
			}
			codes[i] = e.get(tok).Code
		})
	}
	wg.Wait()
	for i, code := range codes {
		want := http.StatusOK
		if i%2 == 1 {
			want = http.StatusForbidden
		}
		e.g.Expect(code).To(Equal(want), "request %d", i)
	}
	e.g.Expect(e.innerCalls).To(Equal(len(codes) / 2))
}

// TestFilterAgainstAPIServerStandIn runs Filter, with its real clients, against an HTTP server
// standing in for the API server.
func TestFilterAgainstAPIServerStandIn(t *testing.T) {
	g := NewWithT(t)
	const echoToken = "echo-token-5e0a"
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		paths = append(paths, req.Method+" "+req.URL.Path)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		var out any
		switch req.URL.Path {
		case "/apis/authentication.k8s.io/v1/tokenreviews":
			var tr authnv1.TokenReview
			decode(t, req, &tr)
			switch tr.Spec.Token {
			case readerToken:
				tr.Status = authnv1.TokenReviewStatus{Authenticated: true, User: readerUser}
			case echoToken: // a server (or proxy) that quotes the request in its error
				w.WriteHeader(http.StatusBadRequest)
				out = metav1.Status{
					TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
					Status:   metav1.StatusFailure, Code: http.StatusBadRequest, Reason: metav1.StatusReasonBadRequest,
					Message: "cannot review token " + tr.Spec.Token,
				}
			}
			if out == nil {
				out = tr
			}
		case "/apis/authorization.k8s.io/v1/subjectaccessreviews":
			var sar authzv1.SubjectAccessReview
			decode(t, req, &sar)
			sar.Status.Allowed = sar.Spec.User == "reader" && sar.Spec.NonResourceAttributes.Verb == "get"
			out = sar
		default:
			http.NotFound(w, req)
			return
		}
		_ = json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(srv.Close)

	cfg := &rest.Config{Host: srv.URL}
	httpClient, err := rest.HTTPClientFor(cfg)
	g.Expect(err).NotTo(HaveOccurred())
	filter, err := Filter(cfg, httpClient)
	g.Expect(err).NotTo(HaveOccurred())

	var logMu sync.Mutex
	var logs []string
	log := funcr.New(func(prefix, args string) {
		logMu.Lock()
		defer logMu.Unlock()
		logs = append(logs, prefix+" "+args)
	}, funcr.Options{Verbosity: 10})
	h, err := filter(log, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "metrics") }))
	g.Expect(err).NotTo(HaveOccurred())

	serve := func(method, token string) *httptest.ResponseRecorder {
		req := httptest.NewRequestWithContext(t.Context(), method, "/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	rec := serve(http.MethodGet, readerToken)
	g.Expect(rec.Code).To(Equal(http.StatusOK), "%s %v", rec.Body.String(), logs)
	g.Expect(rec.Body.String()).To(Equal("metrics"))
	g.Expect(serve(http.MethodPost, readerToken).Code).To(Equal(http.StatusForbidden))
	g.Expect(serve(http.MethodGet, invalidToken).Code).To(Equal(http.StatusUnauthorized))

	rec = serve(http.MethodGet, echoToken)
	g.Expect(rec.Code).To(Equal(http.StatusInternalServerError))
	g.Expect(rec.Body.String()).NotTo(ContainSubstring(echoToken))
	g.Expect(logs).To(ContainElement(ContainSubstring("cannot review token [redacted]")))
	for _, line := range logs {
		g.Expect(line).NotTo(ContainSubstring(echoToken))
	}

	g.Expect(paths).To(Equal([]string{
		"POST /apis/authentication.k8s.io/v1/tokenreviews",
		"POST /apis/authorization.k8s.io/v1/subjectaccessreviews",
		"POST /apis/authorization.k8s.io/v1/subjectaccessreviews", // the token review was cached
		"POST /apis/authentication.k8s.io/v1/tokenreviews",
		"POST /apis/authentication.k8s.io/v1/tokenreviews", // a 400 is not retried
	}))
}

// decode reads a request body in whatever format client-go sent it (protobuf by default).
func decode(t *testing.T, req *http.Request, into runtime.Object) {
	body, err := io.ReadAll(req.Body)
	if err == nil {
		_, _, err = scheme.Codecs.UniversalDeserializer().Decode(body, nil, into)
	}
	if err != nil {
		t.Errorf("decode %s: %v", req.URL.Path, err)
	}
}

func TestBearerToken(t *testing.T) {
	g := NewWithT(t)
	for header, want := range map[string]string{
		"":                      "",
		"Bearer abc":            "abc",
		"bearer abc":            "abc",
		" Bearer abc ":          "abc",
		"Bearer abc def":        "abc", // as k8s.io/apiserver: the rest is ignored
		"Bearer  abc":           "",
		"Bearer":                "",
		"Basic abc":             "",
		"Bearerabc":             "",
		strings.Repeat("x", 10): "",
	} {
		g.Expect(bearerToken(header)).To(Equal(want), header)
	}
}
