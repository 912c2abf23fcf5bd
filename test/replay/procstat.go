package replay

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// It is 100 on every Linux architecture Go supports (the kernel fixes it
// for user space), and reading sysconf(_SC_CLK_TCK) would need cgo.
const clockTick = 10 * time.Millisecond

// parseStat returns a process's CPU time (user + system) and parent pid
// from the text of /proc/<pid>/stat. The command name (field 2) is in
// parentheses and may hold spaces and parentheses itself, so fields are
// counted from its last ')'.
func parseStat(text string) (cpu time.Duration, ppid int, err error) {
	i := strings.LastIndexByte(text, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("reading /proc stat %q: no command name", abbreviate(text))
	}
	// After ")": state(3) ppid(4) ... utime(14) stime(15).
	f := strings.Fields(text[i+1:])
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("reading /proc stat %q: %d fields after the command name, want at least 13", abbreviate(text), len(f))
	}
	ppid, err = strconv.Atoi(f[1])
	if err != nil {
		return 0, 0, fmt.Errorf("reading /proc stat: ppid %q: %w", f[1], err)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, fmt.Errorf("reading /proc stat: cpu time %q is not a tick count", s)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, ppid, nil
}

func abbreviate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// processCPU is the CPU time pid has used so far.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading the CPU time of pid %d: %w", pid, err)
	}
	cpu, _, err := parseStat(string(b))
	return cpu, err
}

// childrenOf lists the pids whose parent is pid (Envoy under
// `binderguard local`).
func childrenOf(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		if _, ppid, err := parseStat(string(b)); err == nil && ppid == pid {
			out = append(out, n)
		}
	}
	return out
}
