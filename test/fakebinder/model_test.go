package fakebinder

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/sse"
)

func TestOnSubmit(t *testing.T) {
	tests := map[string]struct {
		podExists bool
		want      submitOutcome
	}{
		"no pod of the build's name: the submit creates one, a build": {want: submitCreate},
		"a pod of that name exists: 409, the submit watches it":       {podExists: true, want: submitAttach},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := onSubmit(tc.podExists); got != tc.want {
				t.Errorf("onSubmit(%v) = %v; want %v", tc.podExists, got, tc.want)
			}
		})
	}
}

func TestKeepsWorker(t *testing.T) {
	if !keepsWorker(false) {
		t.Error("a submit whose request is there must watch its pod")
	}
	if keepsWorker(true) {
		t.Error("a submit whose request left (stop_event set) must return once its pod exists")
	}
}

func TestBuildOnly(t *testing.T) {
	tests := map[string]struct {
		vals    []string
		apiOnly bool
		want    bool
		wantErr bool
	}{
		"absent":                              {},
		"absent with API-only mode":           {apiOnly: true},
		"true without API-only mode: refused": {vals: []string{"true"}, wantErr: true},
		"true with API-only mode":             {vals: []string{"true"}, apiOnly: true, want: true},
		"any case, stripped":                  {vals: []string{" TRUE\t"}, apiOnly: true, want: true},
		"control characters become spaces":    {vals: []string{"true\x01"}, apiOnly: true, want: true},
		"the last value counts":               {vals: []string{"true", "false"}, want: false},
		"the last value counts, refused":      {vals: []string{"false", "True"}, wantErr: true},
		"anything but true is false":          {vals: []string{"1"}, want: false},
		"yes is not true":                     {vals: []string{"yes"}, apiOnly: true, want: false},
		"empty":                               {vals: []string{""}, want: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := buildOnly(tc.vals, tc.apiOnly)
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Errorf("buildOnly(%q, %v) = %v, %v; want %v, error %v", tc.vals, tc.apiOnly, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestBuildScript(t *testing.T) {
	tgt, err := parseTarget("gh", "org/repo/HEAD")
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		fail       bool
		wantPhases []string // phases in order, repeats collapsed
		wantLast   sse.Payload
	}{
		"a successful build sends fetching then building lines, and leaves built to the caller": {
			wantPhases: []string{sse.PhaseFetching, sse.PhaseBuilding},
			wantLast:   sse.Payload{Phase: sse.PhaseBuilding, Message: "Pushing image\n"},
		},
		"a failing build ends with repo2docker's failed line and the pod's failed status": {
			fail:       true,
			wantPhases: []string{sse.PhaseFetching, sse.PhaseBuilding, sse.PhaseFailed},
			wantLast:   sse.Payload{Phase: sse.PhaseFailed},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			const buildTime = 10 * time.Second
			script := buildScript(buildTime, tgt, tc.fail)
			var phases []string
			for i, s := range script {
				phases = append(phases, s.Event.Phase)
				if i > 0 && s.At < script[i-1].At {
					t.Errorf("step %d at %v comes before step %d at %v", i, s.At, i-1, script[i-1].At)
				}
				if i == 0 && (s.At <= 0 || s.At > buildTime/10) {
					t.Errorf("first step at %v; want the pod Pending a little while first", s.At)
				}
				if s.At > buildTime {
					t.Errorf("step %d at %v is after the build time %v", i, s.At, buildTime)
				}
			}
			if got := slices.Compact(phases); !slices.Equal(got, tc.wantPhases) {
				t.Errorf("phases = %v; want %v", got, tc.wantPhases)
			}
			if got := script[len(script)-1].Event; got != tc.wantLast {
				t.Errorf("last event = %+v; want %+v", got, tc.wantLast)
			}
			var building int
			for _, s := range script {
				if s.Event.Phase == sse.PhaseBuilding {
					building++
				}
			}
			if building < 3 {
				t.Errorf("%d building lines; want several", building)
			}
			if spread := script[len(script)-1].At - script[0].At; spread < buildTime/2 {
				t.Errorf("events spread over %v of a %v build; want them spread over the build", spread, buildTime)
			}
		})
	}
}

func TestImageEvent(t *testing.T) {
	tests := map[string]struct {
		found, buildOnly bool
		phase, want      string
	}{
		"after a build BinderHub says it built the image": {phase: sse.PhaseBuilt, want: "Built image, launching...\n"},
		"for an existing image it says it found it":       {found: true, phase: sse.PhaseBuilt, want: "Found built image, launching...\n"},
		"build_only after a build: ready, done":           {buildOnly: true, phase: sse.PhaseReady, want: "Done! Image built\n"},
		"build_only for an existing image: ready, done":   {found: true, buildOnly: true, phase: sse.PhaseReady, want: "Done! Found built image\n"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := imageEvent("img:1", tc.found, tc.buildOnly)
			if p.Phase != tc.phase || p.Message != tc.want || p.ImageName != "img:1" || p.Token != "" || p.URL != "" {
				t.Errorf("imageEvent = %+v", p)
			}
		})
	}
}

func TestLoadFactor(t *testing.T) {
	tests := map[string]struct {
		watchers, capacity int
		want               float64
	}{
		"an idle pod launches at full speed":               {watchers: 0, capacity: 32, want: 1},
		"watchers up to the capacity cost no launch speed": {watchers: 32, capacity: 32, want: 1},
		"past the capacity launches slow in proportion":    {watchers: 200, capacity: 32, want: 6.25},
		"a zero capacity disables the model":               {watchers: 200, capacity: 0, want: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := loadFactor(tc.watchers, tc.capacity); got != tc.want {
				t.Errorf("loadFactor(%d, %d) = %v; want %v", tc.watchers, tc.capacity, got, tc.want)
			}
		})
	}
}

func TestLaunchClock(t *testing.T) {
	type tick struct {
		dt time.Duration
		f  float64
	}
	tests := map[string]struct {
		need       time.Duration
		ticks      []tick
		wantDone   bool
		wantSlowed bool
	}{
		"an idle launch finishes after its launch time": {
			need: time.Second, ticks: []tick{{500 * time.Millisecond, 1}, {500 * time.Millisecond, 1}}, wantDone: true,
		},
		"a loaded launch has done a fraction of its work": {
			need: time.Second, ticks: []tick{{time.Second, 4}}, wantSlowed: true,
		},
		"a launch finishes once the load goes away": {
			need: time.Second, ticks: []tick{{time.Second, 2}, {500 * time.Millisecond, 1}}, wantDone: true, wantSlowed: true,
		},
		"a factor below one is treated as idle": {
			need: time.Second, ticks: []tick{{time.Second, 0.1}}, wantDone: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := launchClock{need: tc.need}
			var done bool
			for _, tk := range tc.ticks {
				done = c.advance(tk.dt, tk.f)
			}
			if done != tc.wantDone || c.slowed() != tc.wantSlowed {
				t.Errorf("done %v slowed %v; want %v %v (clock %+v)", done, c.slowed(), tc.wantDone, tc.wantSlowed, c)
			}
		})
	}
}

func TestLaunchMessages(t *testing.T) {
	msgs := launchMessages("org-repo-abcd1234")
	if msgs[0].At != 0 || msgs[len(msgs)-1].At != 1 {
		t.Errorf("messages should span the launch from 0 to 1: %+v", msgs)
	}
	if !strings.Contains(msgs[len(msgs)-1].Msg, "/user/org-repo-abcd1234/") {
		t.Errorf("last message %q should name the server", msgs[len(msgs)-1].Msg)
	}
}
