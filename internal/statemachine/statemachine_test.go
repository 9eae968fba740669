package statemachine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type st int

const (
	idle st = iota
	busy
	done
	unknown
)

func TestEnteredFiresOnNextEntryOnly(t *testing.T) {
	m := New(idle, idle, busy, done)
	ch := m.Entered(busy)
	m.Set(idle) // no change: nothing fires
	select {
	case <-ch:
		t.Fatal("fired without entering busy")
	default:
	}
	m.Set(busy)
	<-ch
	assert.Nil(t, m.Entered(unknown), "an unknown state is never entered")
	again := m.Entered(busy)
	m.Set(busy) // already there: no new entry
	select {
	case <-again:
		t.Fatal("re-setting the same state is not an entry")
	default:
	}
}

func TestTransitionOnlyFromTheGivenState(t *testing.T) {
	m := New(idle, idle, busy, done)
	m.Transition(busy, done)
	assert.Equal(t, idle, m.Get())
	m.Transition(idle, busy)
	assert.Equal(t, busy, m.Get())
}

func TestWaitSettled(t *testing.T) {
	m := New(busy, idle, busy, done)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		found, err := m.WaitSettled(ctx, 2, idle, done)
		assert.Equal(t, idle, found)
		errc <- err
	}()
	m.Set(idle)
	m.Settle(1) // an older request: not enough
	select {
	case err := <-errc:
		t.Fatalf("returned before request 2 was settled: %v", err)
	default:
	}
	m.Settle(2)
	require.NoError(t, <-errc)

	m.Set(done)
	found, err := m.WaitSettled(ctx, 99, idle, done)
	require.NoError(t, err, "a final state settles everything")
	assert.Equal(t, done, found)

	short, cancel2 := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel2()
	assert.ErrorIs(t, m.WaitFor(short, busy), context.DeadlineExceeded)
}

func TestIntentNewestWinsAndWakes(t *testing.T) {
	in := NewIntent()
	consume, seq := in.Get()
	assert.False(t, consume)
	assert.Zero(t, seq)
	in.Set(true)
	last := in.Set(false) // never blocks, even with a wake-up pending
	<-in.Wake()
	consume, seq = in.Get()
	assert.False(t, consume)
	assert.Equal(t, last, seq)
	assert.Equal(t, uint64(2), seq)
	select {
	case <-in.Wake():
		t.Fatal("two Sets leave one wake-up, not two")
	default:
	}
}

// TestInIsClosedWhileInState is the form a select written for dp-kafka's
// state channels needs: asked while in the state, it is ready at once.
func TestInIsClosedWhileInState(t *testing.T) {
	m := New(idle, idle, busy, done)
	select {
	case <-m.In(idle):
	default:
		t.Fatal("In(current state) is not ready")
	}
	select {
	case <-m.Entered(idle):
		t.Fatal("Entered(current state) is ready, but it waits for the next entry")
	default:
	}
	ch := m.In(busy)
	select {
	case <-ch:
		t.Fatal("In(busy) ready while idle")
	default:
	}
	m.Set(busy)
	<-ch
	m.Set(idle)
	<-ch // a snapshot: it stays closed after busy is left
	select {
	case <-m.In(busy):
		t.Fatal("a new In(busy) is ready while idle")
	default:
	}
	assert.Nil(t, m.In(unknown))
}

func TestWaitForOrEndsInAnEndState(t *testing.T) {
	errEnd := errors.New("ended")
	m := New(idle, idle, busy, done)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- m.WaitForOr(ctx, busy, errEnd, done) }()
	m.Set(done)
	require.ErrorIs(t, <-errc, errEnd)
	require.NoError(t, m.WaitForOr(ctx, done, errEnd, done), "waiting for an end state itself succeeds")
	m.Set(busy)
	require.NoError(t, m.WaitForOr(ctx, busy, errEnd, done))
	short, cancel2 := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel2()
	require.ErrorIs(t, m.WaitForOr(short, idle, errEnd, done), context.DeadlineExceeded)
}
