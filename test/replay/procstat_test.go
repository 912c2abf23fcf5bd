package replay

import (
	"os"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	tests := map[string]struct {
		text    string
		cpu     time.Duration
		ppid    int
		wantErr bool
	}{
		"utime and stime add up in 10 ms ticks": {
			text: "4242 (fakebinder) S 17 4242 17 0 -1 4194560 1200 0 0 0 150 25 0 0 20 0 12 0 9000 1000000 2000",
			cpu:  1750 * time.Millisecond, ppid: 17,
		},
		"a command name with spaces and parentheses is skipped whole": {
			text: "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 1 1 1",
			cpu:  70 * time.Millisecond, ppid: 1,
		},
		"no command name is an error":       {text: "7 a R 1", wantErr: true},
		"too few fields is an error":        {text: "7 (a) R 1 7 7 0", wantErr: true},
		"a tick count that is not a number": {text: "7 (a) R 1 7 7 0 -1 0 0 0 0 0 x 4 0", wantErr: true},
		"a negative tick count":             {text: "7 (a) R 1 7 7 0 -1 0 0 0 0 0 -3 4 0", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cpu, ppid, err := parseStat(tc.text)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseStat: err %v, want error %v", err, tc.wantErr)
			}
			if cpu != tc.cpu || ppid != tc.ppid {
				t.Errorf("parseStat = %v, %d, want %v, %d", cpu, ppid, tc.cpu, tc.ppid)
			}
		})
	}
}

// The test process itself has used CPU and has a parent: the real /proc
// file parses.
func TestProcessCPUOfThisProcess(t *testing.T) {
	end := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(end) {
	}
	cpu, err := processCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if cpu <= 0 {
		t.Errorf("CPU of a process that spun 50 ms: %v, want more than 0", cpu)
	}
	if kids := childrenOf(os.Getppid()); len(kids) == 0 {
		t.Errorf("childrenOf(parent) found no children, want this process among them")
	}
	if _, err := processCPU(-1); err == nil {
		t.Error("processCPU(-1): no error")
	}
}
