// Package readme reads README.md the way the tests that run it quote it:
// one section by its heading, and the ```sh blocks in it. It is for tests
// only; it must never be imported by a binary.
package readme

import (
	"fmt"
	"os"
	"regexp"
	"strings"
)

// Section returns the body of the section under heading (e.g. "### With
// Helm") in the file at path, up to the next heading of the same level.
// Only that level: a shell comment such as "# Helm 3" inside a block reads
// like a level-one heading.
func Section(path, heading string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	_, sec, ok := strings.Cut(string(b), "\n"+heading+"\n")
	if !ok {
		return "", fmt.Errorf("%s has no %q section", path, heading)
	}
	level, _, _ := strings.Cut(heading, " ")
	if i := strings.Index(sec, "\n"+level+" "); i >= 0 {
		sec = sec[:i]
	}
	return sec, nil
}

var shBlock = regexp.MustCompile("(?s)```sh\n(.*?)```")

// ShBlocks returns the bodies of the ```sh blocks in sec, in order.
func ShBlocks(sec string) []string {
	var out []string
	for _, m := range shBlock.FindAllStringSubmatch(sec, -1) {
		out = append(out, m[1])
	}
	return out
}
