package snapshot

import (
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
)

// BenchmarkNew10kBans is the cost of one rebuild (every informer event or
// file edit) with 10,000 RepoBans and 100 pattern bans.
func BenchmarkNew10kBans(b *testing.B) {
	bans := make([]v1alpha1.RepoBan, 0, 10100)
	for i := range 10000 {
		bans = append(bans, v1alpha1.RepoBan{ObjectMeta: metav1.ObjectMeta{Namespace: "binder", Name: fmt.Sprintf("b%d", i)},
			Spec: v1alpha1.RepoBanSpec{Repos: []v1alpha1.RepoRef{v1alpha1.RepoRef(fmt.Sprintf("gh/owner-%d/repo-%d", i%997, i))}}})
	}
	for i := range 100 {
		bans = append(bans, v1alpha1.RepoBan{ObjectMeta: metav1.ObjectMeta{Namespace: "binder", Name: fmt.Sprintf("p%d", i)},
			Spec: v1alpha1.RepoBanSpec{Patterns: []v1alpha1.SpecPattern{{Regex: v1alpha1.Regex(fmt.Sprintf("^banned-%d/.*", i)), Provider: "gh"}}}})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, errs := New(bans, nil); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}
