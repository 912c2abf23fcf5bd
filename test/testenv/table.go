package testenv

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
)

// Table fetches what `kubectl get <resource> -n <ns>` shows for one of
// binderguard's resources (launchpolicies, repobans): the server-side
// Table, built from the CRD's printer columns.
func (e *Env) Table(t testing.TB, ns, resource string) metav1.Table {
	t.Helper()
	hc, err := rest.HTTPClientFor(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("%s/apis/%s/namespaces/%s/%s", strings.TrimSuffix(e.Config.Host, "/"), v1alpha1.GroupVersion, ns, resource)
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("get %s table: %v", resource, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("get %s table: status %d", resource, resp.StatusCode)
	}
	var tab metav1.Table
	if err := json.NewDecoder(resp.Body).Decode(&tab); err != nil {
		t.Fatalf("decode %s table: %v", resource, err)
	}
	return tab
}

// Cells maps each row's object name to its cells by column name, each
// rendered as kubectl prints a string or number; a missing value (kubectl's
// <none>) is "<nil>".
func Cells(tab metav1.Table) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, row := range tab.Rows {
		cells := map[string]string{}
		for i, col := range tab.ColumnDefinitions {
			if i < len(row.Cells) {
				cells[col.Name] = fmt.Sprint(row.Cells[i])
			}
		}
		out[cells["Name"]] = cells
	}
	return out
}
