package server

import (
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// Extension configs (ECDS: the ban dispatcher and its shards) are served
// from a cache of their own that is not in ADS mode. In ADS mode the
// snapshot cache answers a state-of-the-world request only when it names
// every resource of the type in the snapshot, to keep RDS and EDS in step
// with what Envoy has asked for. Envoy learns a new shard's name from the
// dispatcher, so it cannot have asked for it yet: the cache would hold the
// dispatcher back forever. Delta xDS has no such check, but both modes
// must work.
const (
	cacheMain = "main"
	cacheECDS = "ecds"
)

func ecdsMux(main, ecds cachev3.Cache) *cachev3.MuxCache {
	classify := func(typeURL string) string {
		if typeURL == resource.ExtensionConfigType {
			return cacheECDS
		}
		return cacheMain
	}
	return &cachev3.MuxCache{
		Classify:      func(r *cachev3.Request) string { return classify(r.GetTypeUrl()) },
		ClassifyDelta: func(r *cachev3.DeltaRequest) string { return classify(r.GetTypeUrl()) },
		Caches:        map[string]cachev3.Cache{cacheMain: main, cacheECDS: ecds},
	}
}

// splitECDS divides a snapshot into its extension configs and the rest,
// each with its part of the per-resource versions.
func splitECDS(snap *cachev3.Snapshot) (main, ext *cachev3.Snapshot) {
	main, ext = &cachev3.Snapshot{}, &cachev3.Snapshot{}
	ecdsIndex := cachev3.GetResponseType(resource.ExtensionConfigType)
	for i, r := range snap.Resources {
		if types.ResponseType(i) == ecdsIndex {
			ext.Resources[i] = r
		} else {
			main.Resources[i] = r
		}
	}
	if snap.VersionMap != nil {
		main.VersionMap, ext.VersionMap = map[string]map[string]string{}, map[string]map[string]string{}
		for typ, vs := range snap.VersionMap {
			if typ == resource.ExtensionConfigType {
				ext.VersionMap[typ] = vs
			} else {
				main.VersionMap[typ] = vs
			}
		}
	}
	return main, ext
}
