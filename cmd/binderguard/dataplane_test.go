package main

import (
	"context"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/binderguard/binderguard/policies/snapshot"
	"github.com/binderguard/binderguard/policies/spec"
	"github.com/binderguard/binderguard/xds/ir"
)

// The controller publishes no edge config before what it waits for is
// there: an Envoy reconnecting to a restarted replica would replace its
// config with the first it gets.
func TestDataPathPublishesOnlyAfterWhatItWaitsFor(t *testing.T) {
	listen := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	providers, err := spec.NewParser()
	if err != nil {
		t.Fatal(err)
	}
	up, _ := url.Parse("http://127.0.0.1:1")
	gatesKnown := make(chan struct{})
	d, err := newDataPath(dataPathConfig{
		store:        snapshot.NewStore(snapshot.Empty()),
		upstream:     up,
		providers:    providers,
		edge:         edgeBase(ir.Endpoint{Host: "127.0.0.1", Port: 8080}, 0, up, ir.Endpoint{}, true),
		log:          slog.New(slog.DiscardHandler),
		gateLis:      listen(),
		xdsLis:       listen(),
		gateGrace:    time.Second,
		publishAfter: []<-chan struct{}{gatesKnown},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for _, r := range d.runnables {
		wg.Go(func() { _ = r.run(ctx) })
	}
	time.Sleep(300 * time.Millisecond)
	if v := d.xds.Version(resource.ListenerType); v != "" {
		t.Fatalf("published version %q before the gates were known", v)
	}
	d.ctl.SetGateEndpoints([]ir.Endpoint{{Host: "10.0.0.1", Port: 8081}})
	close(gatesKnown)
	deadline := time.Now().Add(5 * time.Second)
	for d.xds.Version(resource.ListenerType) == "" {
		if time.Now().After(deadline) {
			t.Fatal("nothing published 5 s after the gates were known")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := d.ctl.Edge().Gate.Endpoints; len(got) != 1 {
		t.Errorf("published gates %v", got)
	}
}
