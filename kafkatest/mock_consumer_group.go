package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kafkahub/kafkahub/internal/rebalance"
	"github.com/kafkahub/kafkahub/internal/statemachine"
	"github.com/kafkahub/kafkahub/kafka"
)

// MockConsumerGroup is a kafka.IConsumerGroup whose control calls the test
// scripts in advance: Start, Stop, StopAndWait, Close, RegisterHandler,
// RegisterBatchHandler, Pause and Resume must come in the order expected
// (Pause and Resume with the partitions expected), or the test fails naming
// the call. It consumes nothing; it is for testing code that drives
// a consumer, such as wiring to a health checker or a service's shutdown.
// To test a handler, use Consumer, or call the handler the mock was given
// (see Handler).
//
// State starts as Stopped and follows the expected calls: Start leads to
// Consuming, Stop and StopAndWait to Stopped, Close to Closed, unless the
// expectation says otherwise. SetState moves it at any time, and StateWait,
// StateEntered and InState observe it as they would a real consumer.
// Assignment returns what SetAssignment set, and Paused the partitions of
// the Pause calls made, less those of the Resume calls.
type MockConsumerGroup struct {
	script *script[*CallExpectation]
	states *statemachine.Machine[kafka.State]
	assign *rebalance.Tracker[kafka.TopicPartition] // no callbacks: only the lists

	upstream    chan kafka.Message
	errors      chan error
	initialised chan struct{}
	closer      chan struct{}
	closed      chan struct{}
	closeOnce   sync.Once

	mu           sync.Mutex
	handler      kafka.Handler
	batchHandler kafka.BatchHandler
	health       kafka.Health
	lastHealth   time.Time
}

// CallExpectation is one expected call on a MockConsumerGroup.
type CallExpectation struct {
	mock   *MockConsumerGroup
	method string
	tps    []kafka.TopicPartition // the arguments of Pause and Resume

	err   error
	state *kafka.State
}

// NewMockConsumerGroup returns a MockConsumerGroup, in state Stopped, that
// reports to t, and checks when the test ends (with t.Cleanup) that every
// expectation was met.
func NewMockConsumerGroup(t testing.TB) *MockConsumerGroup {
	t.Helper()
	m := &MockConsumerGroup{
		script:      &script[*CallExpectation]{t: t, name: "MockConsumerGroup"},
		states:      newStates(kafka.Stopped),
		assign:      rebalance.New[kafka.TopicPartition](tpKey, nil, nil, func(string, ...any) {}),
		upstream:    make(chan kafka.Message),
		errors:      make(chan error, kafka.DefaultErrorsBufferSize),
		initialised: make(chan struct{}),
		closer:      make(chan struct{}),
		closed:      make(chan struct{}),
		health:      kafka.Health{Status: kafka.HealthOK},
	}
	close(m.initialised)
	t.Cleanup(func() {
		t.Helper()
		m.script.check()
	})
	return m
}

func (m *MockConsumerGroup) expect(method string) *CallExpectation {
	e := &CallExpectation{mock: m, method: method}
	m.script.add(e)
	return e
}

// ExpectStart expects a call to Start (made directly or by OnHealthChange).
func (m *MockConsumerGroup) ExpectStart() *CallExpectation { return m.expect("Start") }

// ExpectStop expects a call to Stop (made directly or by OnHealthChange).
func (m *MockConsumerGroup) ExpectStop() *CallExpectation { return m.expect("Stop") }

// ExpectStopAndWait expects a call to StopAndWait.
func (m *MockConsumerGroup) ExpectStopAndWait() *CallExpectation { return m.expect("StopAndWait") }

// ExpectClose expects a call to Close. Only the first Close needs one:
// later calls do nothing, as on a real consumer.
func (m *MockConsumerGroup) ExpectClose() *CallExpectation { return m.expect("Close") }

// ExpectRegisterHandler expects a call to RegisterHandler.
func (m *MockConsumerGroup) ExpectRegisterHandler() *CallExpectation {
	return m.expect("RegisterHandler")
}

// ExpectRegisterBatchHandler expects a call to RegisterBatchHandler.
func (m *MockConsumerGroup) ExpectRegisterBatchHandler() *CallExpectation {
	return m.expect("RegisterBatchHandler")
}

// ExpectPause expects a call to Pause with exactly tps, in that order.
func (m *MockConsumerGroup) ExpectPause(tps ...kafka.TopicPartition) *CallExpectation {
	e := &CallExpectation{mock: m, method: "Pause", tps: slices.Clone(tps)}
	m.script.add(e)
	return e
}

// ExpectResume expects a call to Resume with exactly tps, in that order.
func (m *MockConsumerGroup) ExpectResume(tps ...kafka.TopicPartition) *CallExpectation {
	e := &CallExpectation{mock: m, method: "Resume", tps: slices.Clone(tps)}
	m.script.add(e)
	return e
}

// Return sets the error the call returns (nil by default). A call that
// returns an error leaves the state alone, unless ThenState says
// otherwise. Start and Stop return nothing: giving them an error fails the
// test.
func (e *CallExpectation) Return(err error) *CallExpectation {
	if e.method == "Start" || e.method == "Stop" {
		e.mock.script.t.Helper()
		e.mock.script.t.Errorf("kafkatest: MockConsumerGroup: %s returns nothing; Return(%v) is meaningless", e.method, err)
	}
	e.mock.mu.Lock()
	defer e.mock.mu.Unlock()
	e.err = err
	return e
}

// ThenState sets the state the mock enters when the call is made, in place
// of the usual one: for instance ExpectStart().ThenState(kafka.Starting)
// stands for a consumer that cannot join its group.
func (e *CallExpectation) ThenState(s kafka.State) *CallExpectation {
	e.mock.mu.Lock()
	defer e.mock.mu.Unlock()
	e.state = &s
	return e
}

// String describes the expectation, for failure messages.
func (e *CallExpectation) String() string {
	e.mock.mu.Lock()
	defer e.mock.mu.Unlock()
	s := e.method + "(" + formatTPs(e.tps) + ")"
	if e.err != nil {
		s += fmt.Sprintf(" returning %v", e.err)
	}
	if e.state != nil {
		s += " then " + e.state.String()
	}
	return s
}

// formatTPs shows partitions as topic/partition, for failure messages.
func formatTPs(tps []kafka.TopicPartition) string {
	s := make([]string, len(tps))
	for i, tp := range tps {
		s[i] = fmt.Sprintf("%s/%d", tp.Topic, tp.Partition)
	}
	return strings.Join(s, ", ")
}

// call matches a call against the script. It returns the error to return
// and, when the call was expected and succeeds, applies the state.
func (m *MockConsumerGroup) call(method string, args string, usual kafka.State) error {
	return m.callWith(method, args, nil, usual)
}

// callWith is call for Pause and Resume, whose partitions must be the
// expected ones.
func (m *MockConsumerGroup) callWith(method string, args string, tps []kafka.TopicPartition, usual kafka.State) error {
	e, n, ok := m.script.next()
	if !ok {
		return m.script.fail("unexpected call %d: %s(%s): no more calls were expected", n, method, args)
	}
	if e.method != method || !slices.Equal(e.tps, tps) {
		return m.script.fail("call %d: %s(%s), but expected %s", n, method, args, e)
	}
	m.mu.Lock()
	err, state := e.err, e.state
	m.mu.Unlock()
	switch {
	case state != nil:
		m.states.Set(*state)
	case err == nil && usual >= 0:
		m.states.Set(usual)
	}
	return err
}

// Handler returns the handler given to RegisterHandler, or nil, so the test
// can call it with messages built by NewMessage.
func (m *MockConsumerGroup) Handler() kafka.Handler {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.handler
}

// BatchHandler returns the handler given to RegisterBatchHandler, or nil.
func (m *MockConsumerGroup) BatchHandler() kafka.BatchHandler {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.batchHandler
}

// SetState moves the mock to state s, as if the consumer had got there by
// itself: a rebalance (Starting), a failure to join, and so on.
func (m *MockConsumerGroup) SetState(s kafka.State) { m.states.Set(s) }

// SetAssignment sets what Assignment returns (sorted, as a real
// consumer's): the partitions the consumer would have been assigned.
func (m *MockConsumerGroup) SetAssignment(tps ...kafka.TopicPartition) {
	m.assign.Revoked(context.Background(), m.assign.Assignment())
	m.assign.Assigned(context.Background(), tps)
}

// SetHealth sets what Checker reports until Close (HealthOK at first).
func (m *MockConsumerGroup) SetHealth(h kafka.Health) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.health = h
}

// ExpectationsWereMet returns an error listing the expectations not met
// yet, or nil. The mock checks it by itself when the test ends.
func (m *MockConsumerGroup) ExpectationsWereMet() error { return m.script.unmet() }

// RegisterHandler implements kafka.IConsumerGroup; the call must be
// expected. Unless the expectation returns an error, Handler returns h
// from then on.
func (m *MockConsumerGroup) RegisterHandler(_ context.Context, h kafka.Handler) error {
	if h == nil {
		return errors.New("kafkatest: RegisterHandler: nil handler")
	}
	err := m.call("RegisterHandler", "handler", -1)
	if err == nil {
		m.mu.Lock()
		m.handler = h
		m.mu.Unlock()
	}
	return err
}

// RegisterBatchHandler implements kafka.IConsumerGroup; see
// RegisterHandler.
func (m *MockConsumerGroup) RegisterBatchHandler(_ context.Context, h kafka.BatchHandler) error {
	if h == nil {
		return errors.New("kafkatest: RegisterBatchHandler: nil handler")
	}
	err := m.call("RegisterBatchHandler", "handler", -1)
	if err == nil {
		m.mu.Lock()
		m.batchHandler = h
		m.mu.Unlock()
	}
	return err
}

// Start implements kafka.IConsumerGroup; the call must be expected.
func (m *MockConsumerGroup) Start() { _ = m.call("Start", "", kafka.Consuming) }

// Stop implements kafka.IConsumerGroup; the call must be expected.
func (m *MockConsumerGroup) Stop() { _ = m.call("Stop", "", kafka.Stopped) }

// StopAndWait implements kafka.IConsumerGroup; the call must be expected.
func (m *MockConsumerGroup) StopAndWait(context.Context) error {
	return m.call("StopAndWait", "ctx", kafka.Stopped)
}

// State implements kafka.IConsumerGroup.
func (m *MockConsumerGroup) State() kafka.State { return m.states.Get() }

// StateWait implements kafka.IConsumerGroup as the real consumer does:
// nil once in s, kafka.ErrClosed once Closing or Closed (unless s is that
// state), or ctx's error.
func (m *MockConsumerGroup) StateWait(ctx context.Context, s kafka.State) error {
	return waitState(ctx, m.states, s)
}

// StateEntered implements kafka.IConsumerGroup: closed the next time the
// mock enters s.
func (m *MockConsumerGroup) StateEntered(s kafka.State) <-chan struct{} {
	return m.states.Entered(s)
}

// InState implements kafka.IConsumerGroup: closed while the mock is in s
// (a snapshot; see kafka.ConsumerGroup.InState).
func (m *MockConsumerGroup) InState(s kafka.State) <-chan struct{} { return m.states.In(s) }

// StateChan implements kafka.IConsumerGroup; it is StateEntered.
//
// Deprecated: use StateEntered or InState, as on kafka.ConsumerGroup.
func (m *MockConsumerGroup) StateChan(s kafka.State) <-chan struct{} {
	return m.states.Entered(s)
}

// Channels implements kafka.IConsumerGroup. Upstream delivers nothing;
// Upstream, Errors and Closed are closed by a successful Close.
func (m *MockConsumerGroup) Channels() kafka.ConsumerGroupChannels {
	return kafka.ConsumerGroupChannels{
		Upstream:    m.upstream,
		Errors:      m.errors,
		Initialised: m.initialised,
		Closer:      m.closer,
		Closed:      m.closed,
	}
}

// IsInitialised implements kafka.IConsumerGroup: true unless the state is
// Initialising.
func (m *MockConsumerGroup) IsInitialised() bool { return m.State() != kafka.Initialising }

// Initialise implements kafka.IConsumerGroup without a script: it waits
// (within ctx) until the state is not Initialising (see SetState) and
// returns nil, or kafka.ErrClosed once the mock is closed.
func (m *MockConsumerGroup) Initialise(ctx context.Context) error {
	select {
	case <-m.closer:
		return kafka.ErrClosed
	default:
	}
	err := m.states.Wait(ctx, func(s kafka.State, _ uint64) bool { return s != kafka.Initialising })
	if err != nil {
		return fmt.Errorf("%w: %w", kafka.ErrNotInitialised, err)
	}
	select {
	case <-m.closer:
		return kafka.ErrClosed
	default:
		return nil
	}
}

// DroppedErrors implements kafka.IConsumerGroup; it is always 0.
func (m *MockConsumerGroup) DroppedErrors() uint64 { return 0 }

// Checker implements kafka.IConsumerGroup: the health set with SetHealth,
// or CRITICAL after Close.
func (m *MockConsumerGroup) Checker(context.Context) kafka.Health {
	select {
	case <-m.closer:
		return kafka.Health{Status: kafka.HealthCritical, Message: "consumer closed", CheckedAt: time.Now()}
	default:
	}
	m.mu.Lock()
	h := m.health
	m.mu.Unlock()
	if h.CheckedAt.IsZero() {
		h.CheckedAt = time.Now()
	}
	return h
}

// OnHealthChange implements kafka.IConsumerGroup as the real consumer does,
// so it makes the calls the test must expect: Start on an OK result, Stop
// on any other, nothing for a result older than the last.
func (m *MockConsumerGroup) OnHealthChange(h kafka.Health) {
	m.mu.Lock()
	stale := !h.CheckedAt.IsZero() && h.CheckedAt.Before(m.lastHealth)
	if !stale {
		m.lastHealth = h.CheckedAt
	}
	m.mu.Unlock()
	switch {
	case stale:
	case h.Status == kafka.HealthOK:
		m.Start()
	default:
		m.Stop()
	}
}

// Assignment implements kafka.IConsumerGroup: what SetAssignment set.
func (m *MockConsumerGroup) Assignment() []kafka.TopicPartition { return m.assign.Assignment() }

// Pause implements kafka.IConsumerGroup; the call must be expected, with
// the same partitions. Unless the expectation returns an error, Paused
// lists them from then on.
func (m *MockConsumerGroup) Pause(tps ...kafka.TopicPartition) error {
	err := m.callWith("Pause", formatTPs(tps), tps, -1)
	if err == nil {
		m.assign.Pause(tps)
	}
	return err
}

// Resume implements kafka.IConsumerGroup; see Pause. Unless the
// expectation returns an error, Paused no longer lists tps.
func (m *MockConsumerGroup) Resume(tps ...kafka.TopicPartition) error {
	err := m.callWith("Resume", formatTPs(tps), tps, -1)
	if err == nil {
		m.assign.Resume(tps)
	}
	return err
}

// Paused implements kafka.IConsumerGroup: the partitions paused by the
// calls made, sorted.
func (m *MockConsumerGroup) Paused() []kafka.TopicPartition { return m.assign.Paused() }

// Close implements kafka.IConsumerGroup; the first call must be expected.
// When it succeeds, Closer, Upstream, Errors and Closed are closed and the
// state is Closed; later calls return nil without consulting the script.
func (m *MockConsumerGroup) Close(context.Context) error {
	select {
	case <-m.closed:
		return nil
	default:
	}
	err := m.call("Close", "ctx", kafka.Closed)
	if err == nil {
		m.closeOnce.Do(func() {
			close(m.closer)
			close(m.upstream)
			close(m.errors)
			close(m.closed)
		})
	}
	return err
}
