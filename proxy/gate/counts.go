package gate

import "sync/atomic"

// counts are the gate's held launches and upstream launch streams, over
// every flight, mirrored in their gauges. Guarded by Gate.mu.
type counts struct {
	m            *metrics
	dirty        *atomic.Bool // the gate's State changed
	waiters      int
	streams      map[string]int // by key
	streamsTotal int
}

// held adds n (negative: removes) held launches.
func (c *counts) held(n int) {
	c.waiters += n
	c.m.waiters.Set(float64(c.waiters))
	c.dirty.Store(true)
}

// addStream counts one more upstream launch stream of key.
func (c *counts) addStream(key string) {
	c.streams[key]++
	c.streamsTotal++
	c.m.upstreamStreams.Set(float64(c.streamsTotal))
}

// endStream ends the count of one upstream launch stream of key.
func (c *counts) endStream(key string) {
	c.streams[key]--
	if c.streams[key] <= 0 {
		delete(c.streams, key)
	}
	c.streamsTotal--
	c.m.upstreamStreams.Set(float64(c.streamsTotal))
}
