package handling

import "errors"

// Sentinels a handler's error can carry (see Permanent and NoCommit); test
// with errors.Is.
var (
	ErrPermanent = errors.New("kafka: permanent handler error")
	ErrNoCommit  = errors.New("kafka: handler asked not to commit")
)

// signal marks an error with one of the sentinels without changing its
// text, so logs, Errors and the dead-letter headers show the handler's own
// message.
type signal struct {
	err  error
	kind error
}

func (s *signal) Error() string   { return s.err.Error() }
func (s *signal) Unwrap() []error { return []error{s.err, s.kind} }

// Permanent marks err as one that retrying cannot cure. Nil stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &signal{err: err, kind: ErrPermanent}
}

// NoCommit marks err as a request not to commit the message. Nil stays nil.
func NoCommit(err error) error {
	if err == nil {
		return nil
	}
	return &signal{err: err, kind: ErrNoCommit}
}
