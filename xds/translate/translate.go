package translate

import (
	"errors"
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/binderguard/binderguard/xds/ir"
)

// Names of the resources the translator produces. They are fixed: the
// number of clusters and listeners never depends on policy.
const (
	ListenerName  = "edge"
	RouteName     = "edge"
	VirtualHost   = "binderhub"
	ClusterBinder = "binder"
	ClusterGate   = "gate"
	ClusterLaunch = "launch" // aggregate of gate then binder

	// HeaderClass names the class of a launch answer in the response (and
	// in the binderguard.launches stat).
	HeaderClass = "x-binderguard-class"
)

// Resources is one complete, self-consistent set of Envoy resources.
type Resources struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	// Endpoints are the discovered gates, when there are (ir.Gate).
	Endpoints []*endpointv3.ClusterLoadAssignment
	// Extensions are the ban slots, served by ECDS (see BanSlots).
	Extensions []*corev3.TypedExtensionConfig
}

// ByType returns the resources keyed by xDS type URL, as the cache wants them.
func (r *Resources) ByType() map[resource.Type][]types.Resource {
	m := map[resource.Type][]types.Resource{
		resource.ListenerType:        nil,
		resource.RouteType:           nil,
		resource.ClusterType:         nil,
		resource.EndpointType:        nil,
		resource.ExtensionConfigType: nil,
	}
	for _, l := range r.Listeners {
		m[resource.ListenerType] = append(m[resource.ListenerType], l)
	}
	for _, rc := range r.Routes {
		m[resource.RouteType] = append(m[resource.RouteType], rc)
	}
	for _, c := range r.Clusters {
		m[resource.ClusterType] = append(m[resource.ClusterType], c)
	}
	for _, a := range r.Endpoints {
		m[resource.EndpointType] = append(m[resource.EndpointType], a)
	}
	for _, x := range r.Extensions {
		m[resource.ExtensionConfigType] = append(m[resource.ExtensionConfigType], x)
	}
	return m
}

// validator is what every generated proto offers (protoc-gen-validate).
type validator interface{ ValidateAll() error }

// ErrInvalidEdge is returned when the IR lacks what every config needs.
var ErrInvalidEdge = errors.New("edge cannot be translated")

// Translate builds the resources for e. It is best-effort: a bad block is
// skipped and its error joined into the returned error, the rest is still
// translated. Resources is nil only when e itself is unusable. Every
// resource returned has passed its proto validation.
func Translate(e *ir.Edge) (*Resources, error) {
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidEdge, err)
	}
	var errs []error
	routeBlocks, shardBlocks := splitBans(e.Blocks)
	routeBlocks = dropBannedHot(routeBlocks, shardBlocks)
	re := *e
	re.Blocks = routeBlocks
	routes, err := routeConfig(&re)
	errs = append(errs, err)
	slots, shards := banShards(shardBlocks)
	addShardRoutes(routes, e.Launch, shards)

	res := &Resources{
		Listeners:  []*listenerv3.Listener{edgeListener(e)},
		Routes:     []*routev3.RouteConfiguration{routes},
		Clusters:   []*clusterv3.Cluster{binderCluster(e.Binder), gateCluster(e.Gate), launchCluster(e.Gate)},
		Extensions: slots,
	}
	if a := gateEndpoints(e.Gate); a != nil {
		res.Endpoints = append(res.Endpoints, a)
	}
	// Validate each resource as Envoy would, so a translator bug is caught
	// here and not by a NACK.
	for _, v := range res.all() {
		if err := v.ValidateAll(); err != nil {
			return nil, fmt.Errorf("%w: generated %T is invalid: %w", ErrInvalidEdge, v, err)
		}
	}
	return res, errors.Join(errs...)
}

func (r *Resources) all() []validator {
	var out []validator
	for _, l := range r.Listeners {
		out = append(out, l)
	}
	for _, rc := range r.Routes {
		out = append(out, rc)
	}
	for _, c := range r.Clusters {
		out = append(out, c)
	}
	for _, a := range r.Endpoints {
		out = append(out, a)
	}
	for _, x := range r.Extensions {
		out = append(out, x)
	}
	return out
}
