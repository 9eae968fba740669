package kafkatest_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// fakeT is a testing.TB that records failures instead of failing, so that
// tests can check what a mock reports to the test it is given, and examples
// (which have no *testing.T) can print it. Cleanups run when finish is
// called, as they would when a test ends.
type fakeT struct {
	testing.TB // never called: every method the mocks and NewCluster use is below

	mu       sync.Mutex
	failures []string
	cleanups []func()
}

func (t *fakeT) Helper()      {}
func (t *fakeT) Name() string { return "FakeTest" }

func (t *fakeT) Errorf(format string, args ...any) { t.record(fmt.Sprintf(format, args...)) }
func (t *fakeT) Error(args ...any)                 { t.record(fmt.Sprint(args...)) }

// Fatalf records, then panics: unlike the testing package it cannot stop
// the goroutine of a test it does not run.
func (t *fakeT) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	t.record(msg)
	panic("fatal: " + msg)
}

func (t *fakeT) Logf(string, ...any) {}
func (t *fakeT) Log(...any)          {}

func (t *fakeT) Context() context.Context { return context.Background() }

func (t *fakeT) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.failures) > 0
}

func (t *fakeT) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

func (t *fakeT) record(msg string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failures = append(t.failures, msg)
}

// finish runs the cleanups, last registered first, and returns every
// failure recorded.
func (t *fakeT) finish() []string {
	t.mu.Lock()
	cs := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.failures...)
}

// all joins the failures, for assertions on their text.
func (t *fakeT) all() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.failures, "\n")
}
