package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestPortIsFreeAndBelowTheEphemeralRange(t *testing.T) {
	start := ephemeralStart()
	for range 50 {
		p, err := Port()
		if err != nil {
			t.Fatal(err)
		}
		if p < low || p >= start {
			t.Fatalf("port %d outside [%d, %d)", p, low, start)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d handed out but not free: %v", p, err)
		}
		l.Close()
	}
}
