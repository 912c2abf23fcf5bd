package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupName is the API group of every binderguard policy kind.
const GroupName = "binderguard.io"

// GroupVersion is group version used to register these objects.
var GroupVersion = schema.GroupVersion{Group: GroupName, Version: "v1alpha1"}

// Kind names, as they appear in policy references ("RepoBan/<ns>/<name>").
const (
	KindRepoBan      = "RepoBan"
	KindLaunchPolicy = "LaunchPolicy"
)

// AddToScheme registers RepoBan, LaunchPolicy and their lists with a
// scheme. Registration is explicit (no init side effects): callers build
// their own scheme and call this.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&RepoBan{}, &RepoBanList{},
		&LaunchPolicy{}, &LaunchPolicyList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}

// Resource returns a GroupResource for a resource name in this group,
// as API errors and RBAC rules want it.
func Resource(resource string) schema.GroupResource {
	return GroupVersion.WithResource(resource).GroupResource()
}
