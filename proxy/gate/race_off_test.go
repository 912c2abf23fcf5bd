//go:build !race

package gate_test

const stormScale = 1
