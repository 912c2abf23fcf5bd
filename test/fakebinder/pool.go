package fakebinder

import (
	"container/list"
	"context"
	"sync"
)

// pool is BinderHub's build_pool: a fixed number of worker threads that
// run each request's pod watch and log stream, one worker each. A task
// that cannot get a worker waits in FIFO order, silently, as the thread
// pool's queue does.
type pool struct {
	// mu is taken inside Server.mu (Stats); pool never calls out while
	// holding it, so the order cannot deadlock.
	mu      sync.Mutex
	size    int
	used    int
	peak    int       // most waiters at once since newPool or resetPeak
	waiters list.List // of *poolWaiter, oldest first
}

type poolWaiter struct {
	n     int
	ready chan struct{} // closed when the slots are granted
}

func newPool(size int) *pool {
	return &pool{size: size}
}

// acquire takes n slots, waiting in line until they are free or ctx or
// stop ends. It reports whether the slots were taken.
func (p *pool) acquire(ctx context.Context, stop <-chan struct{}, n int) bool {
	p.mu.Lock()
	if p.waiters.Len() == 0 && p.used+n <= p.size {
		p.used += n
		p.mu.Unlock()
		return true
	}
	w := &poolWaiter{n: n, ready: make(chan struct{})}
	el := p.waiters.PushBack(w)
	p.peak = max(p.peak, p.waiters.Len())
	p.mu.Unlock()

	select {
	case <-w.ready:
		return true
	case <-ctx.Done():
	case <-stop:
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-w.ready:
		// Granted while giving up: hand the slots back.
		p.used -= n
		p.grantLocked()
	default:
		p.waiters.Remove(el)
		// The head may have been blocking smaller requests behind it.
		p.grantLocked()
	}
	return false
}

// release returns n slots and wakes the waiters they fit.
func (p *pool) release(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.used -= n
	p.grantLocked()
}

func (p *pool) grantLocked() {
	for e := p.waiters.Front(); e != nil; e = p.waiters.Front() {
		w := e.Value.(*poolWaiter)
		if p.used+w.n > p.size {
			return
		}
		p.used += w.n
		p.waiters.Remove(e)
		close(w.ready)
	}
}

func (p *pool) queued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waiters.Len()
}

// peakQueued is the longest the queue has been; resetPeak restarts it.
func (p *pool) peakQueued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak
}

func (p *pool) resetPeak() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.peak = p.waiters.Len()
}

func (p *pool) inUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.used
}
