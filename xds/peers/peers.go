// Package peers tells the edge which gate replicas there are: the
// addresses in the EndpointSlices of the gate's headless Service, as
// endpoints for EDS. A replica counts from the moment it has an address
// until it starts terminating, Ready or not. The edge's active health
// check decides when a gate takes launches, so a new replica's Envoy can
// reach a gate before its pod turns Ready, and no Envoy waits for DNS to
// learn a replica came or went.
//
// It must never judge a gate's health (Envoy's active health check does)
// nor build Envoy config (package translate).
package peers

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/binderguard/binderguard/policies/latest"
	"github.com/binderguard/binderguard/xds/ir"
)

// Endpoints returns the gates the slices list on their port named port,
// sorted and without duplicates (a replica can sit in two slices while
// the EndpointSlice controller moves it). Terminating replicas are left
// out: their pod is going, and the launches they end are retried through
// the others.
func Endpoints(eps []discoveryv1.EndpointSlice, port string) []ir.Endpoint {
	var out []ir.Endpoint
	for _, s := range eps {
		if s.AddressType != discoveryv1.AddressTypeIPv4 && s.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		var num int32
		for _, p := range s.Ports {
			if p.Port != nil && p.Name != nil && *p.Name == port {
				num = *p.Port
			}
		}
		if num <= 0 || num > 65535 {
			continue
		}
		for _, e := range s.Endpoints {
			if e.Conditions.Terminating != nil && *e.Conditions.Terminating {
				continue
			}
			for _, a := range e.Addresses {
				if ip, err := netip.ParseAddr(a); err == nil {
					out = append(out, ir.Endpoint{Host: ip.String(), Port: uint32(num)})
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b ir.Endpoint) int {
		return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.Port, b.Port))
	})
	return slices.Compact(out)
}

// PortName is the gate port's name in the Service.
const PortName = "gate"

// Config says which Service's gates to follow.
type Config struct {
	// Cache holds the EndpointSlices; the manager's, limited to the
	// Service's slices (see Selector).
	Cache     cache.Cache
	Namespace string
	Service   string
	// Port names the gate port in the Service.
	Port   string
	Logger *slog.Logger
}

// Selector is the label every EndpointSlice of service carries, to limit
// the cache to them.
func Selector(service string) map[string]string {
	return map[string]string{discoveryv1.LabelServiceName: service}
}

// Watch calls set with the gates every time the Service's EndpointSlices
// change, the first time once the cache has them, until ctx ends.
func Watch(ctx context.Context, c Config, set func([]ir.Endpoint)) error {
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	inf, err := c.Cache.GetInformer(ctx, &discoveryv1.EndpointSlice{})
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped before the cache synced
		}
		return fmt.Errorf("watching the EndpointSlices of %s/%s: %w", c.Namespace, c.Service, err)
	}
	kick := latest.NewKick()
	kick.Poke()
	poke := func(any) { kick.Poke() }
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    poke,
		UpdateFunc: func(_, o any) { poke(o) },
		DeleteFunc: poke,
	})
	if err != nil {
		return fmt.Errorf("watching the EndpointSlices of %s/%s: %w", c.Namespace, c.Service, err)
	}
	defer func() { _ = inf.RemoveEventHandler(reg) }()

	var (
		last []ir.Endpoint
		sent bool
	)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-kick:
		}
		var list discoveryv1.EndpointSliceList
		if err := c.Cache.List(ctx, &list, client.InNamespace(c.Namespace), client.MatchingLabels(Selector(c.Service))); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Error("listing the gate replicas", "service", c.Namespace+"/"+c.Service, "err", err)
			time.AfterFunc(time.Second, kick.Poke) // the kick outlives nothing: Poke never blocks
			continue
		}
		eps := Endpoints(list.Items, c.Port)
		if sent && slices.Equal(eps, last) {
			continue
		}
		if len(eps) == 0 {
			log.Warn("the gate Service lists no gate: launches go straight to BinderHub", "service", c.Namespace+"/"+c.Service)
		} else {
			log.Info("gate replicas", "service", c.Namespace+"/"+c.Service, "gates", eps)
		}
		last, sent = eps, true
		set(eps)
	}
}
