package middleware

import (
	"errors"

	backoffv4 "github.com/cenkalti/backoff/v4"
	backoffv5 "github.com/cenkalti/backoff/v5"
)

// PermanentError marks a handler error that retrying cannot fix (invalid
// input, say): the message goes to the poison topic at once.
type PermanentError struct {
	Err error
}

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so Retry poisons the message without retrying. It
// returns nil for a nil err.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent, or with backoff.Permanent from github.com/cenkalti/backoff/v4 or
// v5 (the one Watermill uses).
func IsPermanent(err error) bool {
	var p *PermanentError
	var v4 *backoffv4.PermanentError
	var v5 *backoffv5.PermanentError
	return errors.As(err, &p) || errors.As(err, &v4) || errors.As(err, &v5)
}
