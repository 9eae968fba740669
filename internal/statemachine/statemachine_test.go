package statemachine

import (
	"context"
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
	go func() { errc <- m.WaitSettled(ctx, 2, idle, done) }()
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
	require.NoError(t, m.WaitSettled(ctx, 99, idle, done), "a final state settles everything")

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
