// Package clerk is a small client for the users endpoints of Clerk's Backend API
// (https://clerk.com/docs/reference/backend-api), written on net/http for the kubeclerk operator.
//
// The client pins the API version ([APIVersion]), sends the secret key only in the
// Authorization header, and never retries: one method call is at most one HTTP request, so
// callers can account for every call against Clerk's rate limits. All Clients that share a
// secret key share one token bucket (see [New]), and a 429 answer pauses that bucket until
// Clerk's Retry-After has passed.
//
// Errors are typed. A response with a non-2xx status is an [*APIError] (also when the body is
// not Clerk's JSON, e.g. a proxy's HTML page); a request that got no usable response is a
// [*RequestError]; a request held back by the client's own rate limiter is a [*LimiterError];
// arguments refused before sending wrap [ErrInvalidID] or [ErrInvalidParams]. Classify them with
// [IsNotFound], [IsRejected], [IsAuthentication], [IsRateLimited] and [IsUnavailable], and read
// [RetryAfter] and [TraceID] for requeueing and messages.
//
// The secret key never appears in an error, in the String, GoString or fmt output of a
// [Client] or [Options], or in the process-wide limiter registry (which is keyed by a SHA-256 of
// the key). The package does not log.
//
// The package imports nothing from k8s.io or the operator's API types.
package clerk
