package server

import (
	"context"
	"errors"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
)

func ext(t *testing.T, name string) *corev3.TypedExtensionConfig {
	t.Helper()
	a, err := anypb.New(&emptypb.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	return &corev3.TypedExtensionConfig{Name: name, TypedConfig: a}
}

func TestSetVersions(t *testing.T) {
	res := func(t *testing.T) map[resource.Type][]types.Resource {
		m := clusters(cluster("a", time.Second))
		m[resource.ExtensionConfigType] = []types.Resource{ext(t, "slot.0")}
		return m
	}
	versions := map[resource.Type]string{resource.ClusterType: "c1", resource.ExtensionConfigType: "e1"}
	tests := map[string]struct {
		versions    map[resource.Type]string
		perResource map[resource.Type]map[string]string
		wantErr     error
	}{
		"type versions alone publish": {versions: versions},
		"per-resource versions for every resource publish": {
			versions:    versions,
			perResource: map[resource.Type]map[string]string{resource.ClusterType: {"a": "1"}, resource.ExtensionConfigType: {"slot.0": "2"}},
		},
		"a type without a version is refused": {
			versions: map[resource.Type]string{resource.ClusterType: "c1"},
			wantErr:  ErrInconsistent,
		},
		"a resource without its own version is refused": {
			versions:    versions,
			perResource: map[resource.Type]map[string]string{resource.ClusterType: {"a": "1"}},
			wantErr:     ErrInconsistent,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := New(Config{})
			changed, err := s.Set(context.Background(), res(t), tc.versions, tc.perResource)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && (!changed || s.Version(resource.ExtensionConfigType) != "e1") {
				t.Errorf("changed %v, extension version %q", changed, s.Version(resource.ExtensionConfigType))
			}
		})
	}
}

// Extension configs live in a cache of their own; everything else in the
// ADS one, each snapshot with its share of the per-resource versions.
func TestSplitECDS(t *testing.T) {
	snap, err := cachev3.NewSnapshot("v", map[resource.Type][]types.Resource{
		resource.ClusterType:         {cluster("a", time.Second)},
		resource.ExtensionConfigType: {ext(t, "slot.0")},
	})
	if err != nil {
		t.Fatal(err)
	}
	snap.VersionMap = map[string]map[string]string{resource.ClusterType: {"a": "1"}, resource.ExtensionConfigType: {"slot.0": "2"}}
	main, ext := splitECDS(snap)
	if got := main.GetResources(resource.ExtensionConfigType); len(got) != 0 {
		t.Errorf("main snapshot has extension configs %v", got)
	}
	if got := ext.GetResources(resource.ClusterType); len(got) != 0 {
		t.Errorf("extension snapshot has clusters %v", got)
	}
	if ext.GetResources(resource.ExtensionConfigType)["slot.0"] == nil || main.GetResources(resource.ClusterType)["a"] == nil {
		t.Error("a resource went missing in the split")
	}
	if main.VersionMap[resource.ClusterType]["a"] != "1" || ext.VersionMap[resource.ExtensionConfigType]["slot.0"] != "2" ||
		main.VersionMap[resource.ExtensionConfigType] != nil {
		t.Errorf("versions split wrong: main %v, ext %v", main.VersionMap, ext.VersionMap)
	}
}
