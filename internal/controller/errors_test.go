package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

// retErr says what classify must return as the error.
type retErr int

const (
	retNil      retErr = iota // nil: the Result says when to retry
	retTerminal               // reconcile.TerminalError wrapping the input: no retry until the spec changes
	retBackoff                // the input itself (not terminal): controller-runtime retries with backoff
)

func (r retErr) String() string { return [...]string{"nil", "terminal", "backoff"}[r] }

func ptAPIError(status int, retryAfter time.Duration, trace string, details ...clerk.ErrorDetail) *clerk.APIError {
	return &clerk.APIError{StatusCode: status, RetryAfter: retryAfter, TraceID: trace, Errors: details,
		Method: "POST", Path: "/users/user_1/ban"}
}

func TestClassify(t *testing.T) {
	const sync = 10 * time.Minute
	exact := func(d time.Duration) [2]time.Duration { return [2]time.Duration{d, d} }
	aroundSync := [2]time.Duration{sync, sync + sync/10} // sync period plus up to 10% jitter
	tests := []struct {
		name        string
		err         error
		wantReason  string
		wantStalled bool
		wantRequeue [2]time.Duration // RequeueAfter must lie in [min, max]
		wantRet     retErr
		wantInMsg   []string
	}{
		{
			name:        "invalid spec: terminal and Stalled",
			err:         fmt.Errorf("plan Clerk user user_1: %w", &InvalidSpecError{Field: "spec.publicMetadata", Reason: "must be a JSON object, not []interface {}"}),
			wantReason:  ReasonInvalidSpec,
			wantStalled: true,
			wantRet:     retTerminal,
			wantInMsg:   []string{"spec.publicMetadata", "must be a JSON object"},
		},
		{
			name:        "ambiguous user: Stalled, checked again every sync period",
			err:         &stallError{reason: ReasonAmbiguousUser, message: "Several Clerk users match externalID \"x\"; set spec.userID."},
			wantReason:  ReasonAmbiguousUser,
			wantStalled: true,
			wantRequeue: aroundSync,
			wantInMsg:   []string{"set spec.userID"},
		},
		{
			name:        "conflict: Stalled, checked again every sync period",
			err:         fmt.Errorf("sync: %w", &stallError{reason: ReasonConflict, message: "already managed by ClerkUser a/b"}),
			wantReason:  ReasonConflict,
			wantStalled: true,
			wantRequeue: aroundSync,
			wantInMsg:   []string{"already managed by ClerkUser a/b"},
		},
		{
			name:        "user deleted: Stalled, checked again every sync period",
			err:         &stallError{reason: ReasonUserDeleted, message: "deleted outside kubeclerk"},
			wantReason:  ReasonUserDeleted,
			wantStalled: true,
			wantRequeue: aroundSync,
			wantInMsg:   []string{"deleted outside kubeclerk"},
		},
		{
			name:        "user not found yet: not Ready, not Stalled, checked again every sync period",
			err:         &waitError{reason: ReasonUserNotFound, message: "No Clerk user matches yet"},
			wantReason:  ReasonUserNotFound,
			wantRequeue: aroundSync,
			wantInMsg:   []string{"No Clerk user matches yet"},
		},
		{
			name:        "429 with Retry-After: requeue after it, no error",
			err:         fmt.Errorf("ban Clerk user user_1: %w", ptAPIError(429, 7*time.Second, "trace_429", clerk.ErrorDetail{Code: "too_many_requests", Message: "Too many requests"})),
			wantReason:  ReasonRateLimited,
			wantRequeue: exact(7 * time.Second),
			wantInMsg:   []string{"7s", "trace_429"},
		},
		{
			name:        "429 without Retry-After: requeue after the default, no error",
			err:         fmt.Errorf("ban Clerk user user_1: %w", ptAPIError(429, 0, "")),
			wantReason:  ReasonRateLimited,
			wantRequeue: exact(defaultRetryAfter),
		},
		{
			name:        "client-side rate limiter would pass the deadline: treated as a 429",
			err:         fmt.Errorf("read Clerk user user_1: %w", &clerk.LimiterError{Method: "GET", Path: "/users/user_1", RetryAfter: 3 * time.Second, Err: context.DeadlineExceeded}),
			wantReason:  ReasonRateLimited,
			wantRequeue: exact(3 * time.Second),
		},
		{
			name:       "401: AuthenticationFailed, retried with backoff",
			err:        fmt.Errorf("read Clerk user user_1: %w", ptAPIError(401, 0, "trace_401", clerk.ErrorDetail{Code: "authentication_invalid", Message: "Invalid authentication"})),
			wantReason: ReasonAuthenticationFailed,
			wantRet:    retBackoff,
			wantInMsg:  []string{"CLERK_SECRET_KEY", "trace_401"},
		},
		{
			name:       "403: AuthenticationFailed, retried with backoff",
			err:        fmt.Errorf("lock Clerk user user_1: %w", ptAPIError(403, 0, "trace_403", clerk.ErrorDetail{Code: "authorization_invalid"})),
			wantReason: ReasonAuthenticationFailed,
			wantRet:    retBackoff,
			wantInMsg:  []string{"trace_403"},
		},
		{
			name:        "403 feature_not_enabled: ClerkRejected with Clerk's message, not AuthenticationFailed",
			err:         fmt.Errorf("lock Clerk user user_1: %w", ptAPIError(403, 0, "trace_403f", clerk.ErrorDetail{Code: "feature_not_enabled", Message: "not enabled", LongMessage: "This feature is not enabled on this instance"})),
			wantReason:  ReasonClerkRejected,
			wantStalled: true,
			wantRet:     retTerminal,
			wantInMsg:   []string{"not enabled", "trace_403f"},
		},
		{
			name:        "403 user_quota_exceeded: ClerkRejected",
			err:         fmt.Errorf("create Clerk user: %w", ptAPIError(403, 0, "", clerk.ErrorDetail{Code: "user_quota_exceeded", Message: "You have reached your limit of 100 users."})),
			wantReason:  ReasonClerkRejected,
			wantStalled: true,
			wantRet:     retTerminal,
			wantInMsg:   []string{"limit of 100 users"},
		},
		{
			name:        "429 with a huge Retry-After: capped as the client's pause is",
			err:         fmt.Errorf("ban Clerk user user_1: %w", ptAPIError(429, 48*time.Hour, "")),
			wantReason:  ReasonRateLimited,
			wantRequeue: exact(clerk.MaxPause),
		},
		{
			name:       "404 on a write: the user vanished, read again with backoff",
			err:        fmt.Errorf("update Clerk user user_1: %w", ptAPIError(404, 0, "trace_404", clerk.ErrorDetail{Code: "resource_not_found"})),
			wantReason: ReasonProgressing,
			wantRet:    retBackoff,
			wantInMsg:  []string{"trace_404"},
		},
		{
			name: "400: ClerkRejected, terminal and Stalled, with Clerk's trace ID",
			err: fmt.Errorf("update metadata of Clerk user user_1: %w", ptAPIError(400, 0, "trace_400",
				clerk.ErrorDetail{Code: "form_param_format_invalid", Message: "is invalid", LongMessage: "public_metadata must be an object"})),
			wantReason:  ReasonClerkRejected,
			wantStalled: true,
			wantRet:     retTerminal,
			wantInMsg:   []string{"trace_400", "form_param_format_invalid", "public_metadata must be an object", "fix the spec"},
		},
		{
			name: "422: ClerkRejected, terminal and Stalled, with Clerk's trace ID",
			err: fmt.Errorf("update Clerk user user_1: %w", ptAPIError(422, 0, "trace_422",
				clerk.ErrorDetail{Code: "form_identifier_exists", Message: "That username is taken."})),
			wantReason:  ReasonClerkRejected,
			wantStalled: true,
			wantRet:     retTerminal,
			wantInMsg:   []string{"trace_422", "form_identifier_exists", "That username is taken."},
		},
		{
			name:       "500: ClerkUnavailable, retried with backoff",
			err:        fmt.Errorf("ban Clerk user user_1: %w", ptAPIError(500, 0, "trace_500")),
			wantReason: ReasonClerkUnavailable,
			wantRet:    retBackoff,
			wantInMsg:  []string{"trace_500"},
		},
		{
			name:       "503 with Retry-After: still ClerkUnavailable, retried with backoff",
			err:        fmt.Errorf("ban Clerk user user_1: %w", ptAPIError(503, 30*time.Second, "")),
			wantReason: ReasonClerkUnavailable,
			wantRet:    retBackoff,
		},
		{
			name: "network error: ClerkUnavailable, retried with backoff",
			err: fmt.Errorf("read Clerk user user_1: %w", &clerk.RequestError{Method: "GET", Path: "/users/user_1",
				Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}),
			wantReason: ReasonClerkUnavailable,
			wantRet:    retBackoff,
			wantInMsg:  []string{"connection refused"},
		},
		{
			name: "timeout: ClerkUnavailable, retried with backoff",
			err: fmt.Errorf("read Clerk user user_1: %w", &clerk.RequestError{Method: "GET", Path: "/users/user_1",
				Err: context.DeadlineExceeded}),
			wantReason: ReasonClerkUnavailable,
			wantRet:    retBackoff,
		},
		{
			name:       "unknown error: retried with backoff",
			err:        errors.New("boom"),
			wantReason: ReasonClerkUnavailable,
			wantRet:    retBackoff,
			wantInMsg:  []string{"boom"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, res, err := classify(tt.err, sync)

			if o.reason != tt.wantReason {
				t.Errorf("reason = %q, want %q", o.reason, tt.wantReason)
			}
			if o.ready {
				t.Errorf("an error classified as ready: %+v", o)
			}
			if o.stalled != tt.wantStalled {
				t.Errorf("stalled = %v, want %v", o.stalled, tt.wantStalled)
			}
			for _, s := range tt.wantInMsg {
				if !strings.Contains(o.message, s) {
					t.Errorf("message %q lacks %q", o.message, s)
				}
			}
			if o.message == "" {
				t.Errorf("empty message")
			}

			if lo, hi := tt.wantRequeue[0], tt.wantRequeue[1]; res.RequeueAfter < lo || res.RequeueAfter > hi {
				t.Errorf("RequeueAfter = %s, want in [%s, %s]", res.RequeueAfter, lo, hi)
			}
			if diff := cmp.Diff(ctrl.Result{RequeueAfter: res.RequeueAfter}, res); diff != "" {
				t.Errorf("Result sets more than RequeueAfter (-want +got):\n%s", diff)
			}

			terminal := errors.Is(err, reconcile.TerminalError(nil))
			switch tt.wantRet {
			case retNil:
				if err != nil {
					t.Errorf("returned error = %v, want nil (the Result says when to retry)", err)
				}
			case retTerminal:
				if !terminal {
					t.Errorf("returned error = %v, want a reconcile.TerminalError", err)
				}
				if !errors.Is(err, tt.err) {
					t.Errorf("returned error %v does not wrap the input", err)
				}
			case retBackoff:
				if err == nil || terminal {
					t.Errorf("returned error = %v (terminal %v), want the input for backoff", err, terminal)
				}
				if !errors.Is(err, tt.err) {
					t.Errorf("returned error %v does not wrap the input", err)
				}
			}
			if err != nil && res.RequeueAfter != 0 {
				t.Errorf("both an error and RequeueAfter %s: controller-runtime ignores the Result", res.RequeueAfter)
			}

			// The conditions of the outcome: Stalled exactly for the stalled classes.
			var conds []metav1.Condition
			setConditions(&conds, 1, o, time.Now())
			hasStalled := false
			for _, c := range conds {
				hasStalled = hasStalled || c.Type == ConditionStalled
			}
			if hasStalled != tt.wantStalled {
				t.Errorf("Stalled condition present = %v, want %v: %+v", hasStalled, tt.wantStalled, conds)
			}
		})
	}
}

// TestClassifyJitter: periodic checks are spread over [period, period+10%] and not all equal.
func TestClassifyJitter(t *testing.T) {
	const sync = time.Minute
	seen := map[time.Duration]bool{}
	for range 50 {
		_, res, _ := classify(&waitError{reason: ReasonUserNotFound, message: "x"}, sync)
		if res.RequeueAfter < sync || res.RequeueAfter > sync+sync/10 {
			t.Fatalf("RequeueAfter = %s, want in [%s, %s]", res.RequeueAfter, sync, sync+sync/10)
		}
		seen[res.RequeueAfter] = true
	}
	if len(seen) < 2 {
		t.Errorf("50 requeues all after %v: no jitter", seen)
	}
}

// TestClassifyInvalidSpecFromPlan: an oversized spec found by plan ends Stalled and terminal,
// with a message that names the field and not the value.
func TestClassifyInvalidSpecFromPlan(t *testing.T) {
	spec := clerkv1alpha1.ClerkUserSpec{
		PrivateMetadata: ptJSON(`{"k":"` + strings.Repeat("valuevaluevalue", 600) + `"}`)}
	_, err := plan(&spec, &clerkv1alpha1.ClerkUserStatus{}, ptUser())
	if err == nil {
		t.Fatal("plan() of an oversized spec returned no error")
	}
	o, res, ret := classify(fmt.Errorf("sync: %w", err), time.Minute)
	if o.reason != ReasonInvalidSpec || !o.stalled {
		t.Errorf("outcome = %+v, want Stalled InvalidSpec", o)
	}
	if !errors.Is(ret, reconcile.TerminalError(nil)) {
		t.Errorf("returned error = %v, want terminal", ret)
	}
	if res != (ctrl.Result{}) {
		t.Errorf("Result = %+v, want zero for a terminal error", res)
	}
	if strings.Contains(o.message, "valuevaluevalue") {
		t.Errorf("message %q contains the metadata value", o.message)
	}
	if !strings.Contains(o.message, "spec.privateMetadata") {
		t.Errorf("message %q does not name the field", o.message)
	}
}

// TestRetryBackoffIsCapped: after an error an object is retried with exponential backoff from
// 5 ms, but never more than 30 s later, however long Clerk failed (controller-runtime's default
// waits up to 1000 s, so an object could sit idle for a quarter of an hour after a recovery).
func TestRetryBackoffIsCapped(t *testing.T) {
	rl := retryRateLimiter()
	a := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "a"}}
	b := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "b"}}
	var waited time.Duration
	for i := range 100 {
		d := rl.When(a)
		want := min(5*time.Millisecond<<i, 30*time.Second)
		if i >= 20 {
			want = 30 * time.Second
		}
		if d != want {
			t.Fatalf("failure %d: backoff %s, want %s", i+1, d, want)
		}
		waited += d
	}
	if got := rl.NumRequeues(a); got != 100 {
		t.Errorf("NumRequeues = %d, want 100", got)
	}
	// 13 doublings (5 ms … 20.48 s) then 87 retries 30 s apart: 44 minutes, where the uncapped
	// backoff would have reached 1000 s per wait after 18 retries.
	if want := 5*time.Millisecond*(1<<13-1) + 87*30*time.Second; waited != want {
		t.Errorf("100 retries waited %s in all, want %s", waited, want)
	}
	// Objects back off independently; a success starts over.
	if d := rl.When(b); d != 5*time.Millisecond {
		t.Errorf("first failure of another object: backoff %s, want 5ms", d)
	}
	rl.Forget(a)
	if d := rl.When(a); d != 5*time.Millisecond {
		t.Errorf("first failure after a success: backoff %s, want 5ms", d)
	}
}
