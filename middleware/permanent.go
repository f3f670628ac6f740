package middleware

import (
	"errors"

	"github.com/cenkalti/backoff/v4"
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
// Permanent (or with backoff.Permanent from github.com/cenkalti/backoff/v4).
func IsPermanent(err error) bool {
	var p *PermanentError
	var bp *backoff.PermanentError
	return errors.As(err, &p) || errors.As(err, &bp)
}
