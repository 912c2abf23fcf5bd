package replay

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/binderguard/binderguard/test/freeport"
)

// proc is one child process of the replay: the simulator or binderguard.
type proc struct {
	name   string
	cmd    *exec.Cmd
	cancel context.CancelFunc
	out    *tailBuffer
	exited chan struct{} // closed when the process has been waited for
	err    error         // Wait's error, set before exited closes
}

// start runs bin with args; the process ends with stop or with ctx.
func start(ctx context.Context, name, bin string, args, env []string) (*proc, error) {
	ctx, cancel := context.WithCancel(ctx)
	p := &proc{name: name, cancel: cancel, out: &tailBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Cancel = func() error { return p.cmd.Process.Signal(syscall.SIGTERM) }
	p.cmd.WaitDelay = 10 * time.Second // then SIGKILL
	if err := p.cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("starting %s (%s): %w", name, bin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop ends the process (SIGTERM, SIGKILL after 10 s) and waits for it.
func (p *proc) stop() {
	p.cancel()
	<-p.exited
}

// alive reports an error naming the process and its last output once it
// has exited.
func (p *proc) alive() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited (%v): %s", p.name, p.err, p.out.last())
	default:
		return nil
	}
}

// waitAnswer waits until url answers 200 with a body containing want while
// p lives: the answer must come from the process the replay started, not
// from another program on the port.
func (p *proc) waitAnswer(ctx context.Context, url, want string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for {
		if err := p.alive(); err != nil {
			return err
		}
		if ok, _ := answers(ctx, url, want); ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer %s within %v: %s", p.name, url, within, p.out.last())
		case <-p.exited:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func answers(ctx context.Context, url, want string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return err == nil && resp.StatusCode == http.StatusOK && bytes.Contains(b, []byte(want)), err
}

// freeAddr finds a loopback address nobody listens on. Another program
// may take it before the child binds it; the child then fails to start
// and waitAnswer says so.
func freeAddr() (string, error) { return freeport.Addr() }

// tailBuffer keeps the last 16 KiB a process wrote.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

const tailSize = 16 << 10

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > tailSize {
		t.b = append(t.b[:0], t.b[len(t.b)-tailSize:]...)
	}
	return len(p), nil
}

// last is the last non-empty line written, for one-line errors.
func (t *tailBuffer) last() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(string(t.b)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
