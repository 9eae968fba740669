package kafkatest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// script is the ordered list of expectations shared by the mocks. Order
// matters because the order of sends or of Start and Stop is usually what
// the test is about; a call that does not fit fails the test at once, and
// expectations left over fail it when it ends.
type script[E fmt.Stringer] struct {
	t    testing.TB
	name string // the mock's type, to prefix failures

	mu       sync.Mutex
	expected []E
	calls    int // calls matched against the script so far
}

func (s *script[E]) add(e E) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expected = append(s.expected, e)
}

// next removes and returns the expectation the next call must meet, or
// reports that none is left.
func (s *script[E]) next() (e E, n int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if len(s.expected) == 0 {
		return e, s.calls, false
	}
	e = s.expected[0]
	s.expected = s.expected[1:]
	return e, s.calls, true
}

// fail reports a call the script did not allow. Errorf rather than Fatalf,
// since mocks are called from the code under test, often on goroutines
// where Fatalf must not be used.
func (s *script[E]) fail(format string, args ...any) error {
	s.t.Helper()
	msg := fmt.Sprintf(format, args...)
	s.t.Errorf("kafkatest: %s: %s", s.name, msg)
	return fmt.Errorf("kafkatest: %s: %s", s.name, msg)
}

// unmet describes the expectations left, or returns nil.
func (s *script[E]) unmet() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.expected) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "kafkatest: %s: %d expected calls were not made:", s.name, len(s.expected))
	for i, e := range s.expected {
		fmt.Fprintf(&b, "\n\t%d. %s", s.calls+i+1, e)
	}
	return fmt.Errorf("%s", b.String())
}

// check fails the test if expectations are left; mocks run it on cleanup.
func (s *script[E]) check() {
	s.t.Helper()
	if err := s.unmet(); err != nil {
		s.t.Errorf("%v", err)
	}
}

// quote shows a key or value in a failure message, shortened so that one
// large payload does not bury the rest.
func quote(b []byte) string {
	const limit = 120
	if b == nil {
		return "nil"
	}
	if len(b) > limit {
		return fmt.Sprintf("%q...(%d bytes)", b[:limit], len(b))
	}
	return fmt.Sprintf("%q", b)
}
