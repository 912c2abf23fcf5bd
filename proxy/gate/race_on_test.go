//go:build race

package gate_test

// The race detector slows the gate and the simulator about tenfold, so
// storms are a tenth the size under it: still enough to race, and the
// time bounds, computed from N, still hold.
const stormScale = 10
