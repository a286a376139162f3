package chat

import (
	"errors"
	"fmt"
	"time"
)

// Error codes sent to clients in `error` events and negative
// acknowledgements. They are part of the protocol: never rename one.
const (
	// CodeInvalidPayload: the event is not an object {message, username}
	// with string fields.
	CodeInvalidPayload = "invalid_payload"
	// CodeMessageEmpty: the message is empty after trimming.
	CodeMessageEmpty = "message_empty"
	// CodeMessageTooLong: the message has more than MAX_MESSAGE_LENGTH code points.
	CodeMessageTooLong = "message_too_long"
	// CodeUsernameTooLong: the username has more than MAX_USERNAME_LENGTH code points.
	CodeUsernameTooLong = "username_too_long"
	// CodeInvalidClientID: clientId is present but not a UUID.
	CodeInvalidClientID = "invalid_client_id"
	// CodeClientIDTaken: clientId is the id of a message another sender
	// sent, or the sender's own with other content; only the same text in
	// the same room from the same verified user (an anonymous sender: under
	// the same username) is a retry (Claim.Retries).
	CodeClientIDTaken = "client_id_taken"
	// CodeRateLimited: the connection sent faster than its rate limit.
	CodeRateLimited = "rate_limited"
	// CodeUnavailable: the server cannot take the message now (its log is
	// full or down); nothing was broadcast. The client may retry later.
	CodeUnavailable = "unavailable"
	// CodeNotStored: the message was broadcast but could not be made
	// durable; it was counted and logged.
	CodeNotStored = "not_stored"
	// CodeUnknownEvent: the client emitted an event the server does not know.
	CodeUnknownEvent = "unknown_event"
	// CodeInternal: a fault of the server; it was logged.
	CodeInternal = "internal"
	// CodeLimit: the request would pass a limit; Error.Limit names its
	// setting.
	CodeLimit = "limit"
)

// Error is a fault a client can cause or must know about. It travels to the
// client as {code, reason} (plus retryAfterMs for rate_limited, limit for
// CodeLimit).
type Error struct {
	Code       string
	Reason     string
	RetryAfter time.Duration
	// Limit is the name of the setting a CodeLimit refusal is about.
	Limit string
}

// LimitError returns a CodeLimit refusal of the setting named limit.
func LimitError(limit, format string, args ...any) *Error {
	return &Error{Code: CodeLimit, Reason: fmt.Sprintf(format, args...), Limit: limit}
}

// Errorf returns an *Error with the code and a formatted reason.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Reason: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string { return e.Code + ": " + e.Reason }

// ErrUnavailable is returned by Log.Append when it cannot admit a message
// (its buffer is full, or it is closed). Nothing is broadcast then.
var ErrUnavailable = errors.New("log unavailable")

// ErrLost is wrapped by the errors a Log gives to done for a message it
// admitted but could not make durable.
var ErrLost = errors.New("message lost")

// ErrClosed is returned by engines used after Close.
var ErrClosed = errors.New("closed")

// CodeOf returns the client-facing code of err: its own for an *Error,
// unavailable for ErrUnavailable, internal otherwise.
func CodeOf(err error) *Error {
	var ce *Error
	switch {
	case errors.As(err, &ce):
		return ce
	case errors.Is(err, ErrLost):
		return &Error{Code: CodeNotStored, Reason: "the message was delivered but could not be stored"}
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrClosed):
		return &Error{Code: CodeUnavailable, Reason: "the server cannot take messages right now; try again shortly"}
	default:
		return &Error{Code: CodeInternal, Reason: "the server failed to handle the message"}
	}
}
