package e2e

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/test/fakebinder"
)

// buildBinderguard builds the binderguard command once per test binary.
var buildBinderguard = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "binderguard-e2e-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "binderguard")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/binderguard/binderguard/cmd/binderguard").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/binderguard: %v\n%s", err, out)
	}
	return bin, nil
})

// localStack is `binderguard local` as a user runs it, in front of an
// in-process simulator whose requests are counted.
type localStack struct {
	t          *testing.T
	cmd        *exec.Cmd
	policies   string
	edgeURL    string
	adminURL   string
	metricsURL string
	binderHits *hits
	stderr     *lockedBuffer
	exited     chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startLocal(t *testing.T, fb fakebinder.Config) *localStack {
	t.Helper()
	envoy := envoyBinary(t)
	bin, err := buildBinderguard()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	if fb.BuildTime == 0 {
		fb.BuildTime = 500 * time.Millisecond
	}
	fb.ReadyHold = 10 * time.Millisecond
	sim, err := fakebinder.New(fb)
	if err != nil {
		t.Fatal(err)
	}
	ls := &localStack{t: t, policies: t.TempDir(), binderHits: &hits{}, stderr: &lockedBuffer{}, exited: make(chan error, 1)}
	bl, bep := listen(t)
	bsrv := &http.Server{Handler: ls.binderHits.wrap(sim.Handler()), ReadHeaderTimeout: 5 * time.Second}
	go bsrv.Serve(bl)
	t.Cleanup(func() { sim.Close(); bsrv.Close() })

	port := func() string { return fmt.Sprintf("127.0.0.1:%d", freePort(t)) }
	listenAddr, admin, metrics := port(), port(), port()
	ls.edgeURL, ls.adminURL, ls.metricsURL = "http://"+listenAddr, "http://"+admin, "http://"+metrics
	ls.cmd = exec.CommandContext(ctx, bin, "local",
		"--upstream", "http://"+bep.String(), "--listen", listenAddr, "--admin", admin,
		"--gate", port(), "--xds", port(), "--metrics", metrics, "--stats", port(),
		"--policies", ls.policies)
	ls.cmd.Env = append(os.Environ(), "ENVOY_BIN="+envoy)
	ls.cmd.Stderr = ls.stderr
	ls.cmd.Stdout = io.Discard
	ls.cmd.Cancel = func() error { return ls.cmd.Process.Signal(syscall.SIGTERM) }
	ls.cmd.WaitDelay = 10 * time.Second
	if err := ls.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { ls.exited <- ls.cmd.Wait() }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("binderguard local stderr (tail):\n%s", tail([]byte(ls.stderr.String()), 40))
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		a := launch(ctx, ls.edgeURL, "gh/warm/up/HEAD", 10*time.Second)
		if a.final().Phase == sse.PhaseReady {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("binderguard local never served a launch: %+v %v", a.events, a.err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return ls
}

// probe asks Envoy about a launch path without ever reaching BinderHub
// (probeBan): "banned" once the edge answers it with the ban.
func (ls *localStack) probe(path string) string {
	return probeBan(http.DefaultClient, ls.edgeURL, path)
}

func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func banYAML(name, repo, msg string) string {
	return fmt.Sprintf("apiVersion: binderguard.io/v1alpha1\nkind: RepoBan\nmetadata:\n  name: %s\nspec:\n  repos: [%q]\n  message: %q\n", name, repo, msg)
}

// The acceptance bound: editing a ban file blocks the repository
// at Envoy within 1 s (p99 over 20 edits), no request for it reaches the
// simulator, and removing the file restores launches.
func TestLocalBanFileEditBlocksAtEnvoyWithinOneSecond(t *testing.T) {
	ls := startLocal(t, fakebinder.Config{})
	var lat []time.Duration
	for i := range 20 {
		repo := fmt.Sprintf("gh/banned%d/repo", i)
		path := fmt.Sprintf("/build/%s/HEAD", repo)
		start := time.Now()
		writeAtomic(t, filepath.Join(ls.policies, fmt.Sprintf("ban-%d.yaml", i)), banYAML(fmt.Sprintf("ban-%d", i), repo, "banned in test"))
		for ls.probe(path) != "banned" {
			if time.Since(start) > 10*time.Second {
				t.Fatalf("edit %d: ban not enforced at envoy after 10 s", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
		lat = append(lat, time.Since(start))
		a := launch(context.Background(), ls.edgeURL, repo+"/HEAD", 5*time.Second)
		if a.final().Phase != sse.PhaseFailed || a.final().StatusCode != 403 || a.final().Message != "banned in test" {
			t.Fatalf("edit %d: banned launch got %+v (err %v)", i, a.events, a.err)
		}
	}
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[(len(lat)*99+99)/100-1]
	t.Logf("ban file edit -> enforced at envoy over %d edits: p50 %v, p99 %v, max %v", len(lat), p50, p99, lat[len(lat)-1])
	if p99 > time.Second {
		t.Errorf("p99 ban propagation %v, want <= 1 s", p99)
	}
	// Other spellings of a banned repository are refused too: at the edge
	// when Envoy's path normalisation makes them canonical, else by the gate.
	for _, other := range []string{
		"git/https%3A%2F%2Fgithub.com%2Fbanned3%2Frepo/HEAD",
		"git/https%3a%2f%2fgithub.com%2fbanned3%2frepo.git/main",
		"gh/Banned3/Repo/HEAD",
	} {
		a := launch(context.Background(), ls.edgeURL, other, 5*time.Second)
		if a.final().StatusCode != 403 {
			t.Errorf("%s got %+v (err %v), want the ban", other, a.events, a.err)
		}
		t.Logf("%s refused by %q", other, cmp.Or(a.header.Get("X-Binderguard-Class"), "the gate"))
	}
	if n := ls.binderHits.prefix("/build/gh/banned") + ls.binderHits.prefix("/build/gh/Banned") + ls.binderHits.prefix("/build/git/"); n != 0 {
		t.Errorf("%d requests for banned repositories reached the simulator", n)
	}

	// Removing the bans restores launches.
	for i := range 20 {
		os.Remove(filepath.Join(ls.policies, fmt.Sprintf("ban-%d.yaml", i)))
	}
	deadline := time.Now().Add(5 * time.Second)
	for ls.probe("/build/gh/banned0/repo/HEAD") == "banned" {
		if time.Now().After(deadline) {
			t.Fatal("ban still enforced 5 s after its file was removed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if a := launch(context.Background(), ls.edgeURL, "gh/banned0/repo/HEAD", 20*time.Second); a.final().Phase != sse.PhaseReady {
		t.Fatalf("after removing the ban got %+v (err %v), want ready", a.events, a.err)
	}
}

// binderguard local restarts Envoy when it dies, and SIGTERM stops the
// whole process tree cleanly.
func TestLocalRestartsEnvoyAndStopsCleanly(t *testing.T) {
	ls := startLocal(t, fakebinder.Config{})
	envoyPID := childPID(t, ls.cmd.Process.Pid)
	if err := syscall.Kill(envoyPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		a := launch(context.Background(), ls.edgeURL, "gh/after/restart/HEAD", 10*time.Second)
		if a.final().Phase == sse.PhaseReady {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("envoy not serving again 30 s after it was killed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	newPID := childPID(t, ls.cmd.Process.Pid)
	if newPID == envoyPID {
		t.Fatalf("envoy pid unchanged after kill")
	}
	if err := ls.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ls.exited:
		if err != nil {
			t.Errorf("binderguard local exited with %v after SIGTERM, want 0", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("binderguard local did not stop within 15 s of SIGTERM")
	}
	if err := syscall.Kill(newPID, 0); err == nil {
		t.Errorf("envoy (pid %d) still running after binderguard stopped", newPID)
	}
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(ls.edgeURL, "http://"), time.Second); err == nil {
		c.Close()
		t.Errorf("edge port still open after stop")
	}
}

// childPID finds the one child process of pid (the supervised Envoy).
func childPID(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	deadline := time.Now().Add(5 * time.Second)
	for {
		var kids []int
		for _, tid := range tasks(pid) {
			b, _ = os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, tid))
			sc := bufio.NewScanner(strings.NewReader(string(b)))
			sc.Split(bufio.ScanWords)
			for sc.Scan() {
				var k int
				fmt.Sscan(sc.Text(), &k)
				kids = append(kids, k)
			}
		}
		if len(kids) == 1 {
			return kids[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("binderguard (pid %d) has children %v, want exactly one envoy (%v)", pid, kids, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tasks(pid int) []int {
	entries, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var out []int
	for _, e := range entries {
		var tid int
		fmt.Sscan(e.Name(), &tid)
		out = append(out, tid)
	}
	return out
}
