package main

import (
	"fmt"
	"net"
	"net/http"
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/healthz"

	"github.com/binderguard/binderguard/policies/latest"
	"github.com/binderguard/binderguard/xds/ir"
)

// servedGates is how serve finds every replica's gate: the gate Service's
// EndpointSlices (--gate-service), the ones Envoy balances launches over,
// else the DNS name Envoy dials.
type servedGates struct {
	peers gatePeers
	// known is closed once the gates are read (at once without
	// --gate-service).
	known <-chan struct{}
	// set takes the gates from the EndpointSlices (nil without
	// --gate-service); check fails until they are read and list one.
	set   func([]ir.Endpoint)
	check healthz.Checker
}

// findGates hands the gates it is set to the edge through setEdge.
func findGates(c serveConfig, setEdge func([]ir.Endpoint)) servedGates {
	known := make(chan struct{})
	if c.gateService == "" {
		close(known)
		return servedGates{peers: dnsPeers(c.gateEndpoint, net.DefaultResolver.LookupHost), known: known}
	}
	gates := latest.New[[]ir.Endpoint](nil)
	var once sync.Once
	return servedGates{
		peers: discoveredPeers(gates),
		known: known,
		set: func(eps []ir.Endpoint) {
			gates.Store(eps)
			setEdge(eps)
			once.Do(func() { close(known) })
		},
		check: func(*http.Request) error {
			select {
			case <-known:
			default:
				return fmt.Errorf("the EndpointSlices of Service %s/%s are not read yet (can binderguard list endpointslices?)", c.installNamespace, c.gateService)
			}
			if len(gates.Load()) == 0 {
				return fmt.Errorf("Service %s/%s lists no gate", c.installNamespace, c.gateService)
			}
			return nil
		},
	}
}
