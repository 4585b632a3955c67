package reconcile

import (
	"errors"
	"fmt"
)

// PermanentError marks a failure that retrying cannot fix: the input itself
// is wrong (someone else's mood, no PDS account, a malformed intent). Callers
// dead-letter it instead of retrying. Every other error is transient.
type PermanentError struct {
	Reason string
}

func (e *PermanentError) Error() string { return e.Reason }

// Permanent returns a PermanentError with a formatted reason. Reasons end up
// in logs and dead-letter headers, so they must never carry secrets.
func Permanent(format string, args ...any) error {
	return &PermanentError{Reason: fmt.Sprintf(format, args...)}
}

// IsPermanent reports whether err (or anything it wraps) is permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}
