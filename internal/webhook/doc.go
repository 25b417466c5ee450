// Package webhook receives Clerk's webhooks: Svix-signed (Standard Webhooks) user.created,
// user.updated and user.deleted events, served at POST /webhooks/clerk/{instance} ([Path]), where
// instance is "default" (the manager's own key) or a ClerkInstance name. It verifies each request
// and hands verified user events to a callback; what an event changes is the caller's business.
//
// # API
//
// [Receiver] is the http.Handler. The caller sets Secrets (the signing secret of an instance, read
// on every request), Deliver (the callback), Metrics, and optionally Now, MaxBodyBytes,
// MaxReplayIDs and Log, then registers it: mux.Handle(webhook.Path, receiver). Deliver gets an
// [Event]: instance, svix-id, type, timestamp, user ID and, for created/updated, the decoded
// [clerk.User] (metadata numbers as json.Number, exact). [Sign] and [SetHeaders] sign a body the
// way Svix does, for tests and for the fake Clerk server.
//
// # Checks and answers
//
// In this order, cheapest first; the body is parsed only after its signature is verified.
//   - The path must be {Path}{instance} with a valid instance name (DNS-1123 subdomain or
//     "default"), else 404.
//   - The method must be POST, else 405.
//   - svix-id (1..256 bytes), svix-timestamp (Unix seconds, plain decimal) and svix-signature must
//     be present and well-formed, and the timestamp within [Tolerance] (5 minutes) of the clock,
//     past or future, else 401. (Clerk sends svix-*; the unbranded webhook-* headers of Standard
//     Webhooks are not read.)
//   - The body may hold at most MaxBodyBytes (256 KiB by default), else 413.
//   - One of the space-separated "v1,<base64>" entries of svix-signature must be the base64 of
//     HMAC-SHA256(key, id + "." + timestamp + "." + raw body), key the base64-decoded secret after
//     "whsec_", else 401. The comparison is github.com/svix/svix-webhooks's (hmac.Equal, constant
//     time). That library checks the timestamp against time.Now only, so the receiver checks it
//     itself, against Now, and uses the library's VerifyIgnoringTimestamp for the signature.
//   - An unknown instance, or one whose secret is unusable (not base64 of at least
//     [MinSecretBytes] bytes), is answered 401 "invalid signature" too, after verifying against a
//     random key, so neither the status nor the timing tells which instances exist. (404 would
//     help nobody but someone probing for instance names; the log and the metrics tell the
//     operator.)
//   - The verified body must be a JSON event with a type; user events need data with an id
//     (user.deleted: data.deleted must not be false), else 400. Other types are answered 204 and
//     ignored.
//   - A user event whose svix-id was seen before for the same instance is answered 204 and not
//     delivered again (see Replays).
//   - Otherwise the event is delivered and answered 204.
//
// Response bodies are a fixed word or two per status ("invalid signature", "invalid event"); they
// never say which check failed, nor echo a signature, secret or body.
//
// # Replays and duplicate deliveries
//
// Svix delivers at least once: an attempt whose answer was lost is sent again with the same
// svix-id. A captured request can also be replayed by someone else within the tolerance window.
// Both look the same, and both get the same answer: 204, not delivered. 2xx, not 409, because any
// non-2xx makes Svix retry, for days, and finally disable the endpoint, while a replayer gains
// nothing from a 2xx: the event is not processed twice. The cache is per instance (the same
// svix-id at another instance, signed with that instance's secret, is another message; a request
// re-sent to another instance fails its signature).
//
// The replay cache keeps a svix-id until Tolerance after the latest timestamp it was signed with,
// when the timestamp check would refuse a replay anyway; a later attempt extends it. It holds at
// most MaxReplayIDs IDs over all instances (100,000 by default, about 15 MiB with Svix's IDs). When full of
// unexpired IDs it does not forget any (that would reopen the replay window); a new user event is
// answered 503 with Retry-After instead, and Svix delivers it again later. Ignored event types are
// not remembered. An attempt arriving after its ID expired is delivered again: deduplication is
// by the window, so Deliver's consumer must be idempotent (a refresh and a reconcile are).
//
// # Ordering
//
// Svix may deliver events out of order; the receiver delivers each one as it arrives and keeps no
// order. The consumer orders them if it must, e.g. by User.UpdatedAt or [Event.Timestamp], and
// treats a user.updated after the user.deleted of the same user as stale.
//
// # Load
//
// A flood, even from a valid signer, is bounded: bodies by MaxBodyBytes, the replay cache by
// MaxReplayIDs, goroutines by net/http's one per connection (the receiver starts none), and the
// log by a rate limit on rejection messages. Deliver is called synchronously before the answer,
// so it must not block: the caller's cache update and work-queue enqueue return at once.
//
// # Metrics
//
// Every request counts once in kubeclerk_webhook_events_total{instance, type, result}: result is
// "accepted" (delivered, or an ignored type) or "rejected" (every error answer, duplicates and
// a full replay cache). type is the event type for verified user events, "other" for verified
// events of other types, and "unknown" when the request was not verified or not parseable.
// instance is the instance name when it has a usable secret, else "" (so a prober cannot create
// series). All label values are bounded.
package webhook
