// Package freeport picks loopback ports for processes a test starts and
// must name a port to before they bind it (Envoy's listeners and admin,
// Prometheus, a fakebinder child).
//
// A port from listening on :0 comes from the kernel's ephemeral range, the
// same range every outgoing connection of the test takes its local port
// from: a flood of 5,000 clients can take the port in the moment between
// the probe closing it and the child binding it. Ports here come from
// below that range, where no outgoing connection lands, at random so that
// test processes running side by side rarely pick the same one.
//
// It must never be used where the caller can bind :0 itself and hand the
// listener over: that has no race at all.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// low is the bottom of the range ports are picked from: above the
// well-known and most registered service ports.
const low = 20000

// Port returns a loopback port nothing listens on now, below the
// ephemeral range.
func Port() (int, error) {
	high := ephemeralStart()
	for range 100 {
		p := low + rand.IntN(high-low)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		_ = l.Close()
		return p, nil
	}
	return 0, fmt.Errorf("no free loopback port in [%d, %d) after 100 tries", low, high)
}

// Addr is Port as "127.0.0.1:<port>".
func Addr() (string, error) {
	p, err := Port()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), nil
}

// ephemeralStart is the first port of the kernel's ephemeral range, or
// Linux's default start where it cannot be read or leaves too little room.
func ephemeralStart() int {
	const linuxDefault = 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return linuxDefault
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return linuxDefault
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < low+1000 {
		return linuxDefault
	}
	return n
}
