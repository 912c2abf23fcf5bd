// Package images tests test/images/build.sh, the script behind `make
// images`: it builds the archives into temporary directories and reads them
// back with go-containerregistry. It must never load or push an image
// anywhere; checking that containerd imports them is a manual step (README).
package images

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// want is what each archive must carry.
type want struct {
	ref        string // the single RepoTags entry; ctr imports it under this name
	user       string
	entrypoint string
	static     bool // no ELF interpreter: nothing else is needed in the image
}

// TestBuild builds every image, then binderguard and fakebinder again into
// another directory, and checks the archives: names, config, contents, and
// the same digests from the same source.
func TestBuild(t *testing.T) {
	images := map[string]want{
		"binderguard": {ref: "ghcr.io/binderguard/binderguard:v0.1.0", user: "65532:65532", entrypoint: "/usr/local/bin/binderguard", static: true},
		"fakebinder":  {ref: "ghcr.io/binderguard/fakebinder:v0.1.0", user: "65532:65532", entrypoint: "/usr/local/bin/fakebinder", static: true},
		"envoy":       {ref: "docker.io/envoyproxy/envoy:v1.40.0", user: "101:101", entrypoint: "/usr/local/bin/envoy"},
		"pause":       {ref: "docker.io/local/pause:v1", user: "65535:65535", entrypoint: "/pause", static: true},
		"coredns":     {ref: "docker.io/local/coredns:v1.12.4", user: "65532:65532", entrypoint: "/coredns", static: true},
	}
	first, second := t.TempDir(), t.TempDir()
	build(t, first)
	build(t, second, "binderguard", "fakebinder")

	for name, w := range images {
		t.Run(name, func(t *testing.T) {
			img := load(t, filepath.Join(first, name+".tar"), w.ref)
			checkConfig(t, img, w)
			files := layerFiles(t, img)
			checkFiles(t, files, w)
			if name == "binderguard" || name == "fakebinder" {
				d1, err1 := img.Digest()
				d2, err2 := load(t, filepath.Join(second, name+".tar"), w.ref).Digest()
				if err := errors.Join(err1, err2); err != nil {
					t.Fatal(err)
				}
				if d1 != d2 {
					t.Errorf("two builds of the same source differ: %s and %s", d1, d2)
				}
			}
		})
	}
}

// build runs the script the way `make images` does, with a fixed epoch.
func build(t *testing.T, out string, names ...string) {
	t.Helper()
	start := time.Now()
	cmd := exec.Command("bash", append([]string{"build.sh", out}, names...)...)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=0")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		t.Fatalf("build.sh %s %v: %v\n%s", out, names, err, log.String())
	}
	t.Logf("build.sh %v took %s:\n%s", names, time.Since(start).Round(time.Second), log.String())
}

// load reads a single-image archive and checks the name it carries.
func load(t *testing.T, file, ref string) v1.Image {
	t.Helper()
	opener := func() (io.ReadCloser, error) { return os.Open(file) }
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		t.Fatalf("reading %s: %v", file, err)
	}
	if len(m) != 1 || !slices.Equal(m[0].RepoTags, []string{ref}) {
		t.Fatalf("%s carries %+v, want one image named %s", file, m, ref)
	}
	img, err := tarball.Image(opener, nil)
	if err != nil {
		t.Fatalf("reading %s: %v", file, err)
	}
	return img
}

func checkConfig(t *testing.T, img v1.Image, w want) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != w.user || strings.HasPrefix(c.User, "0") || c.User == "" {
		t.Errorf("user %q, want %q", c.User, w.user)
	}
	if !slices.Equal(c.Entrypoint, []string{w.entrypoint}) || len(c.Cmd) != 0 {
		t.Errorf("entrypoint %q cmd %q, want [%s]", c.Entrypoint, c.Cmd, w.entrypoint)
	}
	// The Deployment runs `command: ["envoy"]`: the runtime looks it up in
	// the image's PATH.
	if !slices.Contains(c.Env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") {
		t.Errorf("env %q has no PATH", c.Env)
	}
	if cf.OS != "linux" || cf.Architecture == "" {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}
	if !cf.Created.Time.Equal(time.Unix(0, 0)) {
		t.Errorf("created %s, want SOURCE_DATE_EPOCH=0", cf.Created.Time)
	}
}

// file is one regular file or symlink of an image.
type file struct {
	hdr  *tar.Header
	data []byte // kept for executables only, to read their ELF headers
}

// layerFiles flattens the image's layers into path → file, with paths
// cleaned to the form "usr/local/bin/envoy".
func layerFiles(t *testing.T, img v1.Image) map[string]file {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]file{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("reading a layer: %v", err)
			}
			if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(time.Unix(0, 0)) {
				t.Errorf("%s: owner %d:%d, time %s; want 0:0 at the epoch", h.Name, h.Uid, h.Gid, h.ModTime)
			}
			f := file{hdr: h}
			if h.Typeflag == tar.TypeReg && h.Mode&0o111 != 0 {
				if f.data, err = io.ReadAll(tr); err != nil {
					t.Fatal(err)
				}
			}
			files[strings.TrimPrefix(path.Clean("/"+h.Name), "/")] = f
		}
		rc.Close()
	}
	return files
}

func checkFiles(t *testing.T, files map[string]file, w want) {
	t.Helper()
	for p := range files {
		if base := path.Base(p); base == "sh" || base == "bash" || base == "busybox" {
			t.Errorf("the image has a shell: /%s", p)
		}
	}
	entry, ok := files[strings.TrimPrefix(w.entrypoint, "/")]
	if !ok || entry.data == nil {
		t.Fatalf("no executable %s in the image", w.entrypoint)
	}
	exe, err := elf.NewFile(bytes.NewReader(entry.data))
	if err != nil {
		t.Fatalf("%s: %v", w.entrypoint, err)
	}
	interp := ""
	for _, p := range exe.Progs {
		if p.Type == elf.PT_INTERP {
			b, _ := io.ReadAll(p.Open())
			interp = strings.TrimRight(string(b), "\x00")
		}
	}
	if w.static {
		if interp != "" {
			t.Errorf("%s is dynamically linked (interpreter %s)", w.entrypoint, interp)
		}
		return
	}
	// A dynamic executable (Envoy): the loader and every library it names
	// must be in the image, where the loader looks for them.
	needed, err := exe.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	if interp == "" || len(needed) == 0 {
		t.Fatalf("%s: interpreter %q, libraries %q; expected a dynamic executable", w.entrypoint, interp, needed)
	}
	if f, ok := files[strings.TrimPrefix(interp, "/")]; !ok || f.data == nil {
		t.Errorf("no loader %s in the image", interp)
	}
	for _, lib := range needed {
		found := path.Base(interp) == lib
		for p, f := range files {
			inLib := strings.HasPrefix(p, "lib") || strings.HasPrefix(p, "usr/lib")
			found = found || (inLib && path.Base(p) == lib && f.data != nil)
		}
		if !found {
			t.Errorf("%s needs %s, which is not in the image", w.entrypoint, lib)
		}
	}
}
