package fakebinder

import (
	"context"
	"testing"
	"time"
)

func TestPoolQueuesPastItsSize(t *testing.T) {
	p := newPool(4)
	ctx := context.Background()
	for i := range 2 {
		if !p.acquire(ctx, nil, 2) {
			t.Fatalf("acquire %d should succeed at once", i)
		}
	}
	got := make(chan bool, 1)
	go func() { got <- p.acquire(ctx, nil, 2) }()
	for p.queued() != 1 {
		time.Sleep(time.Millisecond)
	}
	select {
	case <-got:
		t.Fatal("a third watcher got slots from a full pool")
	default:
	}
	p.release(2)
	if !<-got {
		t.Fatal("the queued watcher did not get the freed slots")
	}
	if p.inUse() != 4 || p.queued() != 0 {
		t.Errorf("in use %d, queued %d; want 4, 0", p.inUse(), p.queued())
	}
}

func TestPoolWaitEndsWithContextOrStop(t *testing.T) {
	tests := map[string]struct {
		cancelCtx bool
	}{
		"a client that goes away leaves the queue":       {cancelCtx: true},
		"a build that ends releases its queued watchers": {},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := newPool(2)
			if !p.acquire(context.Background(), nil, 2) {
				t.Fatal("first acquire failed")
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stop := make(chan struct{})
			got := make(chan bool, 1)
			go func() { got <- p.acquire(ctx, stop, 2) }()
			for p.queued() != 1 {
				time.Sleep(time.Millisecond)
			}
			if tc.cancelCtx {
				cancel()
			} else {
				close(stop)
			}
			if <-got {
				t.Fatal("acquire reported slots it should not have")
			}
			p.release(2)
			if p.inUse() != 0 || p.queued() != 0 {
				t.Errorf("in use %d, queued %d; want 0, 0", p.inUse(), p.queued())
			}
		})
	}
}
