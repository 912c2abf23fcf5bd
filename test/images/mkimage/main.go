// Command mkimage turns one root-filesystem layer tar into an image archive
// that `ctr images import`, `docker load` and `crane push` accept, with the
// given reference, entrypoint, user and environment. It is the last step of
// test/images/build.sh; go-containerregistry writes the manifest, config and
// archive. It must never read the clock or the host: the same layer and
// flags give the same image digest (timestamps come from --epoch, which the
// script takes from SOURCE_DATE_EPOCH).
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// list is a repeatable string flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	layer := fs.String("layer", "", "uncompressed root filesystem tar (required)")
	ref := fs.String("ref", "", "image reference the archive carries, e.g. ghcr.io/binderguard/binderguard:v0.1.0 (required)")
	out := fs.String("out", "", "archive to write (required)")
	user := fs.String("user", "", "config User, uid:gid")
	epoch := fs.Int64("epoch", 0, "creation time in seconds since 1970 (SOURCE_DATE_EPOCH)")
	arch := fs.String("arch", "amd64", "config architecture")
	createdBy := fs.String("created-by", "test/images/build.sh", "history entry of the layer")
	var entrypoint, env list
	fs.Var(&entrypoint, "entrypoint", "config Entrypoint element (repeat)")
	fs.Var(&env, "env", "config Env element KEY=VALUE (repeat)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *layer == "" || *ref == "" || *out == "" {
		return errors.New("--layer, --ref and --out are required")
	}
	tag, err := name.NewTag(*ref, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("parsing --ref: %w", err)
	}
	created := v1.Time{Time: time.Unix(*epoch, 0).UTC()}

	l, err := tarball.LayerFromFile(*layer)
	if err != nil {
		return fmt.Errorf("reading layer %s: %w", *layer, err)
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer:   l,
		History: v1.History{Created: created, CreatedBy: *createdBy},
	})
	if err != nil {
		return fmt.Errorf("adding layer %s: %w", *layer, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.Created = created
	cfg.OS, cfg.Architecture = "linux", *arch
	cfg.Config.Entrypoint = entrypoint
	cfg.Config.User = *user
	cfg.Config.Env = env
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return fmt.Errorf("setting config: %w", err)
	}
	d, err := img.Digest()
	if err != nil {
		return fmt.Errorf("computing digest: %w", err)
	}

	// Write beside the target and rename, so an interrupted build never
	// leaves a truncated archive under the final name.
	tmp, err := os.CreateTemp(filepath.Dir(*out), ".mkimage-*")
	if err != nil {
		return fmt.Errorf("creating archive: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tarball.Write(tag, img, tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", *out, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", *out, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", *out, err)
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return fmt.Errorf("writing %s: %w", *out, err)
	}
	fmt.Println(d)
	return nil
}
