package latest_test

import (
	"context"
	"testing"
	"time"

	"github.com/binderguard/binderguard/policies/latest"
)

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case x := <-ch:
		return x
	case <-time.After(5 * time.Second):
		t.Fatal("nothing received")
		panic("unreachable")
	}
}

func TestSubscriberGetsTheCurrentValueThenOnlyTheNewest(t *testing.T) {
	v := latest.New(1)
	ch := v.Subscribe(t.Context())
	if got := recv(t, ch); got != 1 {
		t.Fatalf("first value %d, want the current 1", got)
	}
	for i := 2; i <= 5; i++ {
		v.Store(i) // the reader is not reading: these must not block
	}
	if got := recv(t, ch); got != 5 {
		t.Fatalf("a slow reader got %d, want the newest 5", got)
	}
	select {
	case x := <-ch:
		t.Fatalf("a stale value %d was queued", x)
	default:
	}
	if got := v.Load(); got != 5 {
		t.Errorf("Load %d, want 5", got)
	}
}

func TestStoreIfDecidesAgainstTheValueHeld(t *testing.T) {
	v := latest.New("a")
	ch := v.Subscribe(t.Context())
	recv(t, ch)
	if v.StoreIf("b", func(old string) bool { return old != "a" }) {
		t.Fatal("StoreIf stored although replace refused")
	}
	select {
	case x := <-ch:
		t.Fatalf("a refused value %q reached a subscriber", x)
	default:
	}
	if !v.StoreIf("c", func(old string) bool { return old == "a" }) || v.Load() != "c" || recv(t, ch) != "c" {
		t.Fatal("StoreIf did not store what replace allowed")
	}
}

func TestZeroValueAndEndedSubscriptions(t *testing.T) {
	var v latest.Value[int]
	if v.Load() != 0 {
		t.Fatal("zero Value does not hold the zero T")
	}
	ctx, cancel := context.WithCancel(t.Context())
	ch := v.Subscribe(ctx)
	if recv(t, ch) != 0 {
		t.Fatal("zero Value's subscriber did not get the zero T")
	}
	cancel()
	for range ch { // closed once ctx ends
	}
	v.Store(7) // no subscriber left: must not block or panic
	if v.Load() != 7 {
		t.Fatal("Store after an ended subscription lost the value")
	}
}

func TestKickCoalesces(t *testing.T) {
	k := latest.NewKick()
	select {
	case <-k:
		t.Fatal("a new Kick is pending")
	default:
	}
	k.Poke()
	k.Poke()
	k.Poke() // none of these may block
	recv(t, k)
	select {
	case <-k:
		t.Fatal("three pokes made more than one round")
	default:
	}
}
