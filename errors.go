package clickstream

import "errors"

// ErrPermanent marks an error that retrying cannot mend: a state too large
// to store, a corrupt or fenced checkpoint, a setting that differs from the
// one a checkpoint was taken with. The pipeline retries every other error of
// a sink, source or store with back-off, and fails at once on these. Test it
// with errors.Is; make one with Permanent.
var ErrPermanent = errors.New("permanent")

// Permanent returns err marked as permanent (errors.Is(.., ErrPermanent)
// holds), or nil for a nil err.
func Permanent(err error) error {
	if err == nil || errors.Is(err, ErrPermanent) {
		return err
	}
	return &permanentError{err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }

func (e *permanentError) Unwrap() []error { return []error{e.err, ErrPermanent} }
