package e2e

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// `make run` must not storm whatever else answers on a port it needs: with
// the simulator's port taken by another program it stops at once with one
// line naming the port (it used to print "0/200 ready" and a stranger's 404
// page as its result).
func TestMakeRunStopsWhenAPortIsTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:8586")
	if err == nil {
		defer l.Close()
	} // else another program holds it already, which is the case under test too
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join("..", "run-local.sh"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("run-local.sh: %v (stderr %q), want exit 1", err, stderr.String())
	}
	out := stderr.String()
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, "port 8586 (simulator) is already in use") {
		t.Errorf("stderr %q, want one line naming port 8586", out)
	}
}
