package peers

import (
	"slices"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/binderguard/binderguard/xds/ir"
)

func slice(typ discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) discoveryv1.EndpointSlice {
	return discoveryv1.EndpointSlice{AddressType: typ, Ports: ports, Endpoints: eps}
}

func port(name string, n int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: &name, Port: &n}
}

func endpoint(ready, terminating *bool, addrs ...string) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: addrs, Conditions: discoveryv1.EndpointConditions{Ready: ready, Terminating: terminating}}
}

func TestEndpoints(t *testing.T) {
	yes, no := new(true), new(false)
	gate := []discoveryv1.EndpointPort{port("gate", 8081)}
	v4 := discoveryv1.AddressTypeIPv4
	for _, tc := range []struct {
		name   string
		slices []discoveryv1.EndpointSlice
		want   []ir.Endpoint
	}{
		{"no slices: no gates", nil, nil},
		{"ready and not yet ready replicas both count: the health check decides",
			[]discoveryv1.EndpointSlice{slice(v4, gate, endpoint(yes, no, "10.0.0.2"), endpoint(no, nil, "10.0.0.1"))},
			[]ir.Endpoint{{Host: "10.0.0.1", Port: 8081}, {Host: "10.0.0.2", Port: 8081}}},
		{"a terminating replica is left out",
			[]discoveryv1.EndpointSlice{slice(v4, gate, endpoint(no, yes, "10.0.0.1"), endpoint(yes, nil, "10.0.0.2"))},
			[]ir.Endpoint{{Host: "10.0.0.2", Port: 8081}}},
		{"a replica in two slices counts once, sorted across slices",
			[]discoveryv1.EndpointSlice{
				slice(v4, gate, endpoint(yes, nil, "10.0.0.9"), endpoint(yes, nil, "10.0.0.3")),
				slice(v4, gate, endpoint(yes, nil, "10.0.0.3")),
			},
			[]ir.Endpoint{{Host: "10.0.0.3", Port: 8081}, {Host: "10.0.0.9", Port: 8081}}},
		{"the port is the one named gate",
			[]discoveryv1.EndpointSlice{slice(v4, []discoveryv1.EndpointPort{port("metrics", 8082), port("gate", 9000)}, endpoint(yes, nil, "10.0.0.1"))},
			[]ir.Endpoint{{Host: "10.0.0.1", Port: 9000}}},
		{"a slice without the gate port is skipped",
			[]discoveryv1.EndpointSlice{slice(v4, []discoveryv1.EndpointPort{port("metrics", 8082)}, endpoint(yes, nil, "10.0.0.1"))},
			nil},
		{"IPv6 is kept in canonical form; FQDN slices and bad addresses are skipped",
			[]discoveryv1.EndpointSlice{
				slice(discoveryv1.AddressTypeIPv6, gate, endpoint(yes, nil, "fd00:0::1")),
				slice(discoveryv1.AddressTypeFQDN, gate, endpoint(yes, nil, "gate.example.org")),
				slice(v4, gate, endpoint(yes, nil, "not-an-ip")),
			},
			[]ir.Endpoint{{Host: "fd00::1", Port: 8081}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Endpoints(tc.slices, "gate")
			if !slices.Equal(got, tc.want) {
				t.Errorf("Endpoints = %v, want %v", got, tc.want)
			}
			g := ir.Gate{Endpoints: got, Discovered: true}
			if err := g.Validate(); err != nil {
				t.Errorf("the gates found do not validate: %v", err)
			}
		})
	}
}
