package reconcile

import "errors"

// TransportError wraps a failure to reach a server at all (refused,
// reset, timed out) or a gateway/availability answer (502, 503, 504). Such
// a failure says nothing about the request itself, so it is never a reason
// to change strategy, only to retry later.
type TransportError struct{ Err error }

func (e *TransportError) Error() string { return e.Err.Error() }
func (e *TransportError) Unwrap() error { return e.Err }

// IsTransport reports whether err is a TransportError.
func IsTransport(err error) bool {
	var t *TransportError
	return errors.As(err, &t)
}
