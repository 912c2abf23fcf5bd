package readme

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestSectionAndShBlocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "README.md")
	doc := "# T\n\n## Install\n\nx\n```sh\n# as the cluster admin\nkubectl apply\n```\n### With Helm\n```sh\nhelm install\n```\n### Next\n```sh\nno\n```\n## After\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	sec, err := Section(path, "## Install")
	if err != nil {
		t.Fatal(err)
	}
	if got := ShBlocks(sec); !slices.Equal(got, []string{"# as the cluster admin\nkubectl apply\n", "helm install\n", "no\n"}) {
		t.Errorf("## Install blocks %q: a section runs to the next heading of its own level", got)
	}
	sec, err = Section(path, "### With Helm")
	if err != nil {
		t.Fatal(err)
	}
	if got := ShBlocks(sec); !slices.Equal(got, []string{"helm install\n"}) {
		t.Errorf("### With Helm blocks %q", got)
	}
	if _, err := Section(path, "## Missing"); err == nil {
		t.Error("a missing section is not an error")
	}
}
