package launchstorm

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCheckSpec(t *testing.T) {
	tests := map[string]struct {
		spec    string
		wantErr string
	}{
		"a github spec is fine":                   {spec: "gh/binder-examples/requirements/HEAD"},
		"a percent-encoded git spec is fine":      {spec: "git/https%3A%2F%2Fgithub.com%2Fa%2Fb.git/HEAD"},
		"an empty spec is refused":                {spec: "", wantErr: "spec is empty"},
		"a provider alone is refused":             {spec: "gh", wantErr: "malformed spec"},
		"a provider with only a slash is refused": {spec: "gh/", wantErr: "malformed spec"},
		"an unknown provider is refused":          {spec: "foo/a/b", wantErr: `unknown provider "foo"`},
		"a query in the spec is refused":          {spec: "gh/a/b?x=1", wantErr: "percent-encoded"},
		"a space in the spec is refused":          {spec: "gh/a b/c", wantErr: "percent-encoded"},
		"a bad percent-encoding is refused":       {spec: "gh/a/%zz", wantErr: "malformed spec"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := CheckSpec(tc.spec)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckSpec(%q) = %v, want nil", tc.spec, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("CheckSpec(%q) = %v, want an error containing %q", tc.spec, err, tc.wantErr)
			}
		})
	}
}

func TestParseMix(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    []MixEntry
		wantErr string
	}{
		"yaml with duration strings": {
			in: "- spec: gh/a/b/HEAD\n  clients: 3\n  interval: 500ms\n- spec: gh/c/d/HEAD\n  clients: 2\n  ramp: 2s\n  delay: 1s\n",
			want: []MixEntry{
				{Spec: "gh/a/b/HEAD", Clients: 3, Interval: Duration(500 * time.Millisecond)},
				{Spec: "gh/c/d/HEAD", Clients: 2, Ramp: Duration(2 * time.Second), Delay: Duration(time.Second)},
			},
		},
		"json with durations in seconds": {
			in:   `[{"spec": "gh/a/b/HEAD", "clients": 1, "interval": 1.5}]`,
			want: []MixEntry{{Spec: "gh/a/b/HEAD", Clients: 1, Interval: Duration(1500 * time.Millisecond)}},
		},
		"an unknown field is refused":            {in: "- spec: gh/a/b/HEAD\n  clients: 1\n  rate: 3\n", wantErr: "rate"},
		"a bad spec is refused":                  {in: "- spec: nope\n  clients: 1\n", wantErr: "mix entry 0"},
		"zero clients are refused":               {in: "- spec: gh/a/b/HEAD\n", wantErr: "clients must be at least 1"},
		"a bad duration is refused":              {in: "- spec: gh/a/b/HEAD\n  clients: 1\n  ramp: soon\n", wantErr: "soon"},
		"a mapping instead of a list is refused": {in: "spec: gh/a/b/HEAD\n", wantErr: "reading mix"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseMix([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseMix = %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseMix: %v", err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("mix (-want +got):\n%s", d)
			}
		})
	}
}

func TestStartOffsets(t *testing.T) {
	tests := map[string]struct {
		got, want time.Duration
	}{
		"without a ramp every client starts at once":      {got: spread(0, 5, 10), want: 0},
		"a ramp spreads clients evenly":                   {got: spread(10*time.Second, 5, 10), want: 5 * time.Second},
		"a single client starts at once even with a ramp": {got: spread(10*time.Second, 0, 1), want: 0},
		"a mix interval wins over its ramp":               {got: mixOffset(MixEntry{Clients: 4, Interval: Duration(time.Second), Ramp: Duration(time.Hour)}, 3), want: 3 * time.Second},
		"a mix without interval spreads over its ramp":    {got: mixOffset(MixEntry{Clients: 4, Ramp: Duration(4 * time.Second)}, 2), want: 2 * time.Second},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("offset = %v, want %v", tc.got, tc.want)
			}
		})
	}
}

func TestFormatProgress(t *testing.T) {
	got := FormatProgress(1500*time.Millisecond, map[string]int{"waiting": 3, "ready": 2, "custom": 1})
	want := "1.5s  connecting 0  waiting 3  fetching 0  building 0  unknown 0  built 0  launching 0  ready 2  failed 0  error 0  custom 1"
	if got != want {
		t.Errorf("FormatProgress =\n%q\nwant\n%q", got, want)
	}
}
