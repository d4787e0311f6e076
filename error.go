package voluntree

import (
	"errors"
	"fmt"
	"time"
)

// Error codes. Adapters translate them (httpapi maps each to one HTTP status).
const (
	EINVALID      = "invalid"     // the caller's input is wrong
	EOVERLOADED   = "overloaded"  // a bounded queue is full; retry later
	EUNAVAILABLE  = "unavailable" // a dependency is down or shutting down
	ENOTFOUND     = "not_found"
	ECONFLICT     = "conflict"     // the request clashes with the current state (e.g. a published post)
	EUNAUTHORIZED = "unauthorized" // no valid credentials
	EFORBIDDEN    = "forbidden"    // valid credentials, but not for this data
	ERATELIMITED  = "rate_limited" // too many attempts; Error.RetryAfter says when to try again
	EINTERNAL     = "internal"
)

// Error is an error with a code and a message meant for the caller.
type Error struct {
	Code    string
	Message string
	Field   string // the input field at fault, for EINVALID; "" when not about one field
	// RetryAfter is how long the caller should wait before trying again (ERATELIMITED,
	// EOVERLOADED); 0 when unknown.
	RetryAfter time.Duration
}

// Error implements the error interface.
func (e *Error) Error() string { return fmt.Sprintf("voluntree: %s: %s", e.Code, e.Message) }

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns an EINVALID *Error about one input field.
func FieldErrorf(field, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorField returns the Field of the first *Error in err's chain ("" when none).
func ErrorField(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for any other
// non-nil error and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	default:
		return EINTERNAL
	}
}

// ErrorMessage returns the caller-facing message of err: the *Error's message, or a generic
// text for internal errors (whose details belong in logs, not in responses).
func ErrorMessage(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Message
	default:
		return "internal error"
	}
}

// ErrorRetryAfter returns the RetryAfter of the first *Error in err's chain (0 when none).
func ErrorRetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}
