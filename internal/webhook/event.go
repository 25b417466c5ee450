package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

// Event types the receiver delivers.
const (
	TypeUserCreated = "user.created"
	TypeUserUpdated = "user.updated"
	TypeUserDeleted = "user.deleted"
)

// Values of the type label of kubeclerk_webhook_events_total besides the three event types.
const (
	// TypeOther labels verified events of any other type (session.*, organization.*, …).
	TypeOther = "other"
	// TypeUnknown labels requests whose type cannot be trusted: unverified, or not parseable.
	TypeUnknown = "unknown"
)

// Event is a verified user event.
type Event struct {
	// Instance is the instance the event was sent for: "default" or a ClerkInstance name, from
	// the path.
	Instance string
	// ID is the Svix message ID (svix-id), the same for every delivery attempt of the event.
	ID string
	// Type is TypeUserCreated, TypeUserUpdated or TypeUserDeleted.
	Type string
	// Timestamp is when Clerk says the event happened (the envelope's "timestamp", Unix ms), or,
	// when the envelope has none, when the delivery was signed (svix-timestamp).
	Timestamp time.Time
	// UserID is the Clerk user ID, "user_…".
	UserID string
	// User is the user as of the event, for user.created and user.updated; nil for user.deleted.
	// Its metadata numbers are json.Number, as from the Clerk client.
	User *clerk.User
}

// envelope is the JSON body Clerk sends.
type envelope struct {
	Type      string          `json:"type"`
	Timestamp *json.Number    `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// deletedObject is the data of user.deleted.
type deletedObject struct {
	ID      string `json:"id"`
	Deleted *bool  `json:"deleted"`
}

var (
	errMalformed   = errors.New("malformed JSON")
	errMissingType = errors.New("missing type")
	errMissingData = errors.New("missing data")
	errMissingID   = errors.New("missing data.id")
	errNotDeleted  = errors.New("user.deleted with data.deleted false")
	errBadTime     = errors.New("timestamp is not an integer")
)

// decodeExact decodes data into out with numbers inside interface values (metadata) as
// json.Number, keeping their exact text, as the Clerk client does; typed fields (int64
// timestamps, bools) decode as with json.Unmarshal.
func decodeExact(data []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(out)
}

// parseEvent decodes a verified body. It returns the event's type and, for the user event types,
// the event (Instance, ID set by the caller; Timestamp falls back to signed). Errors name the
// problem but quote nothing of the body.
func parseEvent(body []byte, signed time.Time) (Event, error) {
	if !json.Valid(body) {
		return Event{}, errMalformed
	}
	var env envelope
	if err := decodeExact(body, &env); err != nil {
		return Event{}, errMalformed
	}
	if env.Type == "" {
		return Event{}, errMissingType
	}
	e := Event{Type: env.Type, Timestamp: signed}
	if env.Timestamp != nil {
		ms, err := strconv.ParseInt(env.Timestamp.String(), 10, 64)
		if err != nil {
			return Event{}, errBadTime
		}
		e.Timestamp = time.UnixMilli(ms)
	}
	switch env.Type {
	case TypeUserCreated, TypeUserUpdated:
		if len(env.Data) == 0 || bytes.Equal(env.Data, []byte("null")) {
			return Event{}, errMissingData
		}
		var u clerk.User
		if err := decodeExact(env.Data, &u); err != nil {
			return Event{}, errMalformed
		}
		if u.ID == "" {
			return Event{}, errMissingID
		}
		e.UserID, e.User = u.ID, &u
	case TypeUserDeleted:
		if len(env.Data) == 0 || bytes.Equal(env.Data, []byte("null")) {
			return Event{}, errMissingData
		}
		var d deletedObject
		if err := decodeExact(env.Data, &d); err != nil {
			return Event{}, errMalformed
		}
		if d.ID == "" {
			return Event{}, errMissingID
		}
		if d.Deleted != nil && !*d.Deleted {
			return Event{}, errNotDeleted
		}
		e.UserID = d.ID
	}
	return e, nil
}

// typeLabel maps a verified event type to a bounded label value.
func typeLabel(typ string) string {
	switch typ {
	case TypeUserCreated, TypeUserUpdated, TypeUserDeleted:
		return typ
	}
	return TypeOther
}
