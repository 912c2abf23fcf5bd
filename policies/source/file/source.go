package file

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/binderguard/binderguard/policies/snapshot"
)

// Config wires a Source.
type Config struct {
	Dir       string          // the policy directory (required)
	Namespace string          // for objects without one; "default" when empty
	Store     *snapshot.Store // where snapshots go (required)
	Logger    *slog.Logger
	// Debounce is how long the source waits after the last change before
	// reloading: long enough to see an editor's write-and-rename as one
	// change, short enough that an edit applies well within a second.
	Debounce time.Duration // default 100ms
	// Resync rescans the directory this often even without events, for
	// file systems that do not deliver them (NFS, some container mounts).
	Resync time.Duration // default 30s; negative disables
}

// Source watches a policy directory.
type Source struct {
	o   Config
	log *slog.Logger

	mu       sync.Mutex
	good     map[string]Policies // last valid content per file
	problems map[string][]*FileError
}

// New checks the options; Run does the work.
func New(o Config) (*Source, error) {
	if o.Dir == "" || o.Store == nil {
		return nil, errors.New("file policy source: Dir and Store are required")
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.Debounce <= 0 {
		o.Debounce = 100 * time.Millisecond
	}
	if o.Resync == 0 {
		o.Resync = 30 * time.Second
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Source{o: o, log: log.With("component", "policy-file-source", "dir", o.Dir),
		good: map[string]Policies{}, problems: map[string][]*FileError{}}, nil
}

// Run loads the directory, stores a snapshot, and then follows changes
// until ctx ends. It returns an error only if the directory cannot be
// read or watched at the start; later problems are logged and kept in
// Problems while the last good policies stay in force.
func (s *Source) Run(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("file policy source: creating watcher: %w", err)
	}
	defer w.Close()
	if err := w.Add(s.o.Dir); err != nil {
		return fmt.Errorf("file policy source: watching %s: %w", s.o.Dir, err)
	}
	if err := s.Reload(); err != nil {
		return err
	}

	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	var resync <-chan time.Time
	if s.o.Resync > 0 {
		t := time.NewTicker(s.o.Resync)
		defer t.Stop()
		resync = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("file policy source: watcher closed")
			}
			s.log.Debug("policy directory changed", "file", ev.Name, "op", ev.Op.String())
			debounce.Reset(s.o.Debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("file policy source: watcher closed")
			}
			s.log.Warn("policy directory watch error; rescanning", "err", err)
			debounce.Reset(s.o.Debounce)
		case <-debounce.C:
			s.reloadLogged()
		case <-resync:
			s.reloadLogged()
		}
	}
}

func (s *Source) reloadLogged() {
	if err := s.Reload(); err != nil {
		s.log.Error("policy directory unreadable; keeping the last snapshot", "err", err)
	}
}

// Reload rereads the directory now and stores the resulting snapshot.
func (s *Source) Reload() error {
	files, err := policyFiles(s.o.Dir)
	if err != nil {
		return fmt.Errorf("file policy source: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	present := map[string]bool{}
	oldProblems := s.problems
	s.problems = map[string][]*FileError{}
	for _, f := range files {
		present[f] = true
		p, errs := loadFile(f, s.o.Namespace)
		if len(errs) == 0 {
			s.good[f] = p
			continue
		}
		s.problems[f] = errs
		_, kept := s.good[f]
		if !sameProblems(oldProblems[f], errs) {
			for _, e := range errs {
				s.log.Error("invalid policy file; its last valid policies stay in force",
					"file", e.File, "line", e.Line, "reason", e.Reason, "kept_previous", kept)
			}
		}
	}
	for f := range s.good {
		if !present[f] {
			delete(s.good, f)
		}
	}
	order := make([]string, 0, len(s.good))
	for _, f := range files {
		if _, ok := s.good[f]; ok {
			order = append(order, f)
		}
	}
	per := make([]Policies, len(order))
	for i, f := range order {
		per[i] = s.good[f]
	}
	all, dups := dedupe(order, per)
	for _, d := range dups {
		s.problems[d.File] = append(s.problems[d.File], d)
		s.log.Error("duplicate policy", "file", d.File, "reason", d.Reason)
	}
	snap, errs := snapshot.New(all.Bans, all.LaunchPolicies)
	for _, e := range errs { // validated per file already; only a bug lands here
		s.log.Error("policy left out of the snapshot", "err", e)
	}
	if s.o.Store.Store(snap) {
		nb, nl := snap.Counts()
		s.log.Info("policy snapshot updated", "version", snap.Version, "bans", nb, "launch_policies", nl,
			"invalid_files", len(s.problems))
	}
	return nil
}

// Problems returns the current problems, by file name order.
func (s *Source) Problems() []FileError {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []FileError
	for _, errs := range s.problems {
		for _, e := range errs {
			out = append(out, *e)
		}
	}
	sortProblems(out)
	return out
}

func sortProblems(p []FileError) {
	sort.Slice(p, func(i, j int) bool {
		if p[i].File != p[j].File {
			return p[i].File < p[j].File
		}
		return p[i].Line < p[j].Line
	})
}

func sameProblems(a, b []*FileError) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if *a[i] != *b[i] {
			return false
		}
	}
	return true
}
