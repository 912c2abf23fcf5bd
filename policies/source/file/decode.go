package file

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/snapshot"
)

// FileError is one problem in one policy file.
type FileError struct {
	File   string // path as found in the directory
	Line   int    // 1-based; the YAML error's line, else the document's first line
	Reason string
}

func (e *FileError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason) }

// Policies are the objects read from a directory.
type Policies struct {
	Bans           []v1alpha1.RepoBan
	LaunchPolicies []v1alpha1.LaunchPolicy
}

// policyFiles lists what `kubectl apply -f DIR` reads: *.yaml, *.yml and
// *.json directly in dir, sorted, without hidden files (editors' swap and
// lock files start with ".") or backups ending in "~".
func policyFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading policy directory: %w", err)
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") {
			continue
		}
		switch strings.ToLower(filepath.Ext(name)) {
		case ".yaml", ".yml", ".json":
		default:
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err != nil || fi.IsDir() { // follows symlinks (ConfigMap mounts)
			continue
		}
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// LoadDir reads and validates every policy file in dir once. Objects
// without a namespace get namespace. Each problem is a *FileError; a file
// with a problem contributes nothing. The error is for an unreadable dir.
func LoadDir(dir, namespace string) (Policies, []*FileError, error) {
	files, err := policyFiles(dir)
	if err != nil {
		return Policies{}, nil, err
	}
	var problems []*FileError
	var good []string
	var per []Policies
	for _, f := range files {
		p, errs := loadFile(f, namespace)
		if len(errs) > 0 {
			problems = append(problems, errs...)
			continue
		}
		good, per = append(good, f), append(per, p)
	}
	all, dups := dedupe(good, per)
	return all, append(problems, dups...), nil
}

func loadFile(path, namespace string) (Policies, []*FileError) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Policies{}, []*FileError{{File: path, Line: 1, Reason: err.Error()}}
	}
	return Decode(path, data, namespace)
}

// document is one YAML document of a multi-document file.
type document struct {
	line int // first line, 1-based
	data []byte
}

// splitDocuments splits at "---" lines, remembering where each starts.
func splitDocuments(data []byte) []document {
	var docs []document
	cur, start, n := bytes.Buffer{}, 1, 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.HasPrefix(line, "---") && strings.TrimSpace(strings.TrimLeft(line, "-")) == "" {
			docs = append(docs, document{line: start, data: append([]byte(nil), cur.Bytes()...)})
			cur.Reset()
			start = n + 1
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	return append(docs, document{line: start, data: cur.Bytes()})
}

var (
	yamlLine     = regexp.MustCompile(`line (\d+)`)
	unknownField = regexp.MustCompile(`unknown field "([^"]+)"`)
)

// Decode reads the policies in one file's content (multi-document YAML or
// JSON), strictly: unknown fields, unknown kinds and other API versions are
// errors, and every object is validated as the CRD would validate it. A
// file with any problem yields no policies, only the problems.
func Decode(path string, data []byte, namespace string) (Policies, []*FileError) {
	var out Policies
	var errs []*FileError
	fail := func(line int, format string, a ...any) {
		errs = append(errs, &FileError{File: path, Line: line, Reason: fmt.Sprintf(format, a...)})
	}
	for _, doc := range splitDocuments(data) {
		if isBlank(doc.data) {
			continue
		}
		var tm struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc.data, &tm); err != nil {
			fail(doc.line+relLine(err)-1, "not valid YAML: %s", cleanYAMLError(err))
			continue
		}
		if tm.APIVersion != v1alpha1.GroupVersion.String() {
			fail(doc.line, "apiVersion %q is not %s", tm.APIVersion, v1alpha1.GroupVersion.String())
			continue
		}
		switch tm.Kind {
		case v1alpha1.KindRepoBan:
			var rb v1alpha1.RepoBan
			if !strictDecode(doc, &rb, fail) {
				continue
			}
			if rb.Namespace == "" {
				rb.Namespace = namespace
			}
			if _, fe := snapshot.ValidateRepoBan(&rb); len(fe) > 0 {
				fail(doc.line, "RepoBan %q: %s", rb.Name, fe.ToAggregate().Error())
				continue
			}
			out.Bans = append(out.Bans, rb)
		case v1alpha1.KindLaunchPolicy:
			var lp v1alpha1.LaunchPolicy
			if !strictDecode(doc, &lp, fail) {
				continue
			}
			if lp.Namespace == "" {
				lp.Namespace = namespace
			}
			if _, fe := snapshot.ValidateLaunchPolicy(&lp); len(fe) > 0 {
				fail(doc.line, "LaunchPolicy %q: %s", lp.Name, fe.ToAggregate().Error())
				continue
			}
			out.LaunchPolicies = append(out.LaunchPolicies, lp)
		default:
			fail(doc.line, "kind %q is not RepoBan or LaunchPolicy", tm.Kind)
		}
	}
	if len(errs) > 0 { // a file is used whole or not at all
		return Policies{}, errs
	}
	return out, nil
}

func strictDecode(doc document, into any, fail func(int, string, ...any)) bool {
	err := yaml.UnmarshalStrict(doc.data, into)
	if err == nil {
		return true
	}
	line := doc.line + relLine(err) - 1
	if m := unknownField.FindStringSubmatch(err.Error()); m != nil {
		line = doc.line + fieldLine(doc.data, m[1]) - 1
		fail(line, "unknown field %q", m[1])
		return false
	}
	fail(line, "%s", cleanYAMLError(err))
	return false
}

// relLine is the 1-based line a YAML error names, or 1.
func relLine(err error) int {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		if n, e := strconv.Atoi(m[1]); e == nil && n > 0 {
			return n
		}
	}
	return 1
}

// fieldLine finds the line where a (possibly dotted) unknown field's last
// key is written, or 1.
func fieldLine(doc []byte, fieldPath string) int {
	key := fieldPath[strings.LastIndexByte(fieldPath, '.')+1:]
	for i, l := range strings.Split(string(doc), "\n") {
		t := strings.TrimLeft(l, " -\t")
		if strings.HasPrefix(t, key+":") || strings.HasPrefix(t, `"`+key+`":`) {
			return i + 1
		}
	}
	return 1
}

func cleanYAMLError(err error) string {
	s := err.Error()
	for _, p := range []string{"error converting YAML to JSON: ", "error unmarshaling JSON: ", "while decoding JSON: "} {
		s = strings.ReplaceAll(s, p, "")
	}
	return s
}

func isBlank(data []byte) bool {
	for _, l := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(l)
		if t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

// dedupe keeps the first object of each kind/namespace/name (in file name
// order) and reports the others, as kubectl would let the last one win
// silently and that is not a mistake to keep quiet about.
func dedupe(files []string, per []Policies) (Policies, []*FileError) {
	var out Policies
	var errs []*FileError
	seen := map[string]string{}
	for i, p := range per {
		for _, b := range p.Bans {
			k := "RepoBan/" + b.Namespace + "/" + b.Name
			if first, dup := seen[k]; dup {
				errs = append(errs, &FileError{File: files[i], Line: 1, Reason: k + " is also defined in " + first + "; the first one applies"})
				continue
			}
			seen[k] = files[i]
			out.Bans = append(out.Bans, b)
		}
		for _, l := range p.LaunchPolicies {
			k := "LaunchPolicy/" + l.Namespace + "/" + l.Name
			if first, dup := seen[k]; dup {
				errs = append(errs, &FileError{File: files[i], Line: 1, Reason: k + " is also defined in " + first + "; the first one applies"})
				continue
			}
			seen[k] = files[i]
			out.LaunchPolicies = append(out.LaunchPolicies, l)
		}
	}
	return out, errs
}
