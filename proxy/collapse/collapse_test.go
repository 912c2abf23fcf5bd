package collapse

import (
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/sse"
)

var t0 = time.Date(2026, 7, 30, 12, 0, 0, 0, time.UTC)

func withStale(l Limits) Limits { l.Stale = true; return l }

func TestAdmitDecidesRoles(t *testing.T) {
	caps := Limits{Collapse: true, MaxWaiters: 10, MaxWaitersTotal: 100, MaxConcurrent: 5, MaxConcurrentTotal: 50, ShedRetryAfter: 30 * time.Second}
	tests := map[string]struct {
		s    Situation
		l    Limits
		want Decision
	}{
		"the first launch of a spec leads": {
			l: caps, want: Decision{Role: Lead},
		},
		"a launch while the spec builds follows": {
			s: Situation{Stage: Building, Waiters: 3}, l: caps, want: Decision{Role: Follow},
		},
		"a launch before the leader's first phase follows": {
			s: Situation{Stage: Starting}, l: caps, want: Decision{Role: Follow},
		},
		"a launch while followers are released joins the release queue": {
			s: Situation{Stage: Releasing}, l: caps, want: Decision{Role: Follow},
		},
		"a launch of a built spec passes straight through": {
			s: Situation{BuiltUntil: t0.Add(time.Second)}, l: caps, want: Decision{Role: Pass},
		},
		"an expired built mark leads again": {
			s: Situation{BuiltUntil: t0.Add(-time.Second)}, l: caps, want: Decision{Role: Lead},
		},
		"collapse disabled passes through": {
			l: Limits{}, want: Decision{Role: Pass},
		},
		"an open breaker rejects with 503 until it half-opens": {
			s: Situation{Breaker: Open, OpenUntil: t0.Add(42 * time.Second), Stage: Building}, l: caps,
			want: Decision{Role: Reject, StatusCode: 503, Reason: ReasonBreakerOpen, RetryAfter: 42 * time.Second},
		},
		"an open breaker about to half-open still says retry in a second": {
			s: Situation{Breaker: Open, OpenUntil: t0}, l: caps,
			want: Decision{Role: Reject, StatusCode: 503, Reason: ReasonBreakerOpen, RetryAfter: time.Second},
		},
		"a half-open breaker lets a launch lead as the probe": {
			s: Situation{Breaker: HalfOpen}, l: caps, want: Decision{Role: Lead},
		},
		"a full spec sheds followers with 429": {
			s: Situation{Stage: Building, Waiters: 10}, l: caps,
			want: Decision{Role: Reject, StatusCode: 429, Reason: ReasonWaitersSpec, RetryAfter: 30 * time.Second},
		},
		"a full gate sheds followers with 429": {
			s: Situation{Stage: Building, Waiters: 1, WaitersTotal: 100}, l: caps,
			want: Decision{Role: Reject, StatusCode: 429, Reason: ReasonWaitersTotal, RetryAfter: 30 * time.Second},
		},
		"too many launch streams of a spec shed a pass-through": {
			s: Situation{BuiltUntil: t0.Add(time.Minute), Streams: 5}, l: caps,
			want: Decision{Role: Reject, StatusCode: 429, Reason: ReasonConcurrentSpec, RetryAfter: 30 * time.Second},
		},
		"too many launch streams in total shed a would-be leader": {
			s: Situation{StreamsTotal: 50}, l: caps,
			want: Decision{Role: Reject, StatusCode: 429, Reason: ReasonConcurrentTotal, RetryAfter: 30 * time.Second},
		},
		"a launch while a newer commit builds goes stale when the policy says so": {
			s: Situation{Stage: Building, Waiters: 3, LastGood: true}, l: withStale(caps), want: Decision{Role: Stale},
		},
		"a stale launch is not shed by a full spec's waiter cap": {
			s: Situation{Stage: Building, Waiters: 10, LastGood: true}, l: withStale(caps), want: Decision{Role: Stale},
		},
		"with the policy off a launch with a last good commit follows": {
			s: Situation{Stage: Building, LastGood: true}, l: caps, want: Decision{Role: Follow},
		},
		"a spec never seen ready follows": {
			s: Situation{Stage: Building}, l: withStale(caps), want: Decision{Role: Follow},
		},
		"before the leader's first phase a launch follows, the image may exist": {
			s: Situation{Stage: Starting, LastGood: true}, l: withStale(caps), want: Decision{Role: Follow},
		},
		"once the new image is built a launch follows into the release": {
			s: Situation{Stage: Releasing, LastGood: true}, l: withStale(caps), want: Decision{Role: Follow},
		},
		"without room for another stream of the spec a stale launch is held": {
			s: Situation{Stage: Building, LastGood: true, Streams: 5}, l: withStale(caps), want: Decision{Role: Follow},
		},
		"without room for another stream in total a stale launch is held": {
			s: Situation{Stage: Building, LastGood: true, StreamsTotal: 50}, l: withStale(caps), want: Decision{Role: Follow},
		},
		"an open breaker rejects a would-be stale launch": {
			s: Situation{Breaker: Open, OpenUntil: t0.Add(time.Second), Stage: Building, LastGood: true}, l: withStale(caps),
			want: Decision{Role: Reject, StatusCode: 503, Reason: ReasonBreakerOpen, RetryAfter: time.Second},
		},
		"stream caps do not apply to followers": {
			s: Situation{Stage: Building, Streams: 5, StreamsTotal: 50}, l: caps, want: Decision{Role: Follow},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Admit(tc.s, tc.l, t0); got != tc.want {
				t.Errorf("Admit = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func ev(data string) sse.Event {
	e := sse.Event{Data: []byte(data)}
	if p, err := e.Decode(); err == nil {
		e.Phase = p.Phase
	}
	return e
}

func TestClassifyNeverSharesPrivateEvents(t *testing.T) {
	tests := map[string]struct {
		e    sse.Event
		p    Progress
		want Kind
	}{
		"a build log line is shared":                                          {e: ev(`{"phase":"building","message":"Step 1/9\n"}`), want: Log},
		"a fetching line is shared":                                           {e: ev(`{"phase":"fetching","message":"Fetching\n"}`), want: Log},
		"a non-JSON log line (unknown) is shared":                             {e: ev(`{"phase":"unknown","message":"??"}`), want: Log},
		"a log line with a token is private":                                  {e: ev(`{"phase":"building","message":"x","token":"s3cret"}`), want: Private},
		"a log line with a url is private":                                    {e: ev(`{"phase":"building","message":"x","url":"http://u/"}`), want: Private},
		"a log line with any other field is private":                          {e: ev(`{"phase":"building","message":"x","binder_client_ip":"1.2.3.4"}`), want: Private},
		"upstream waiting is private":                                         {e: ev(`{"phase":"waiting","message":"Waiting for build to start...\n"}`), want: Private},
		"built is its own kind":                                               {e: ev(`{"phase":"built","message":"Built image, launching...\n","imageName":"i:1"}`), want: Built},
		"launching is private":                                                {e: ev(`{"phase":"launching","message":"Launching server...\n"}`), want: Private},
		"ready after built is private":                                        {e: ev(`{"phase":"ready","token":"t","url":"u"}`), p: Progress{Started: true, Built: true}, want: Private},
		"ready before built (API-only mode) means the image exists":           {e: ev(`{"phase":"ready","imageName":"i:1","message":"Done! Found built image\n"}`), want: Built},
		"a build failure has no status code":                                  {e: ev(`{"phase":"failed","message":"Build failed\n"}`), p: Progress{Started: true}, want: BuildFailed},
		"a failure before the build started is the spec's (BinderHub's ban)":  {e: ev(`{"phase":"failed","message":"Sorry, o/r is not allowed to launch."}`), want: Refused},
		"an HTTP error before the build started is the request's (its token)": {e: ev(`{"phase":"failed","status_code":403,"message":"Invalid build token\n"}`), want: Rejected},
		"a failed event with a status code is a rejection":                    {e: ev(`{"phase":"failed","status_code":429,"message":"Too many"}`), p: Progress{Started: true}, want: Rejected},
		"everything after built is private":                                   {e: ev(`{"phase":"building","message":"x"}`), p: Progress{Started: true, Built: true}, want: Private},
		"a failure after built is the leader's own":                           {e: ev(`{"phase":"failed","message":"launch failed"}`), p: Progress{Started: true, Built: true}, want: Private},
		"a comment is private":                                                {e: sse.Keepalive, want: Private},
		"a non-JSON event is private":                                         {e: ev(`not json`), want: Private},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Classify(tc.e, tc.p); got != tc.want {
				t.Errorf("Classify = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPacerSpacesReleases(t *testing.T) {
	tests := map[string]struct {
		rate  float64
		burst int
		at    []time.Duration // when Reserve is called, from t0
		want  []time.Duration
	}{
		"a burst goes at once, then one per 1/rate": {
			rate: 10, burst: 2, at: []time.Duration{0, 0, 0, 0},
			want: []time.Duration{0, 0, 100 * time.Millisecond, 200 * time.Millisecond},
		},
		"waiting between releases refills the bucket": {
			rate: 10, burst: 1, at: []time.Duration{0, 100 * time.Millisecond, 300 * time.Millisecond},
			want: []time.Duration{0, 0, 0},
		},
		"the bucket never holds more than the burst": {
			rate: 10, burst: 1, at: []time.Duration{0, time.Hour, time.Hour},
			want: []time.Duration{0, 0, 100 * time.Millisecond},
		},
		"no rate means no pacing": {
			rate: 0, burst: 0, at: []time.Duration{0, 0, 0}, want: []time.Duration{0, 0, 0},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := NewPacer(tc.rate, tc.burst)
			for i, at := range tc.at {
				if got := p.Reserve(t0.Add(at)); (got - tc.want[i]).Abs() > time.Microsecond {
					t.Errorf("release %d: wait %v, want %v", i, got, tc.want[i])
				}
			}
		})
	}
}

func jwtWithExp(exp time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." +
		enc(fmt.Appendf(nil, `{"aud":"gh/o/r/HEAD","origin":"binder.test","exp":%d}`, exp.Unix())) + ".c2ln"
}

func TestHeldLaunchesNeverPresentAnExpiredToken(t *testing.T) {
	old := jwtWithExp(t0.Add(-time.Minute))
	soon := jwtWithExp(t0.Add(5 * time.Second))
	fresh := jwtWithExp(t0.Add(4 * time.Minute))
	fresher := jwtWithExp(t0.Add(5 * time.Minute))
	tests := map[string]struct {
		seen         []string // observed for gh/o/r/HEAD at origin binder.test
		spec, origin string
		own          string
		want         string
		choice       TokenChoice
	}{
		"a valid own token is kept":                    {seen: []string{fresher}, spec: "gh/o/r/HEAD", origin: "binder.test", own: fresh, want: fresh, choice: TokenOwn},
		"an expired token is swapped for the newest":   {seen: []string{fresh, fresher, old}, spec: "gh/o/r/HEAD", origin: "binder.test", own: old, want: fresher, choice: TokenFresher},
		"a token about to expire is swapped":           {seen: []string{fresh}, spec: "gh/o/r/HEAD", origin: "binder.test", own: soon, want: fresh, choice: TokenFresher},
		"tokens of another origin are not used":        {seen: []string{fresh}, spec: "gh/o/r/HEAD", origin: "evil.test", own: old, want: "", choice: TokenNone},
		"tokens of another spelling are not used":      {seen: []string{fresh}, spec: "gh/O/R/HEAD", origin: "binder.test", own: old, want: "", choice: TokenNone},
		"no token is never given one":                  {seen: []string{fresh}, spec: "gh/o/r/HEAD", origin: "binder.test", own: "", want: "", choice: TokenOwn},
		"an expired token with nothing fresher goes":   {seen: []string{old}, spec: "gh/o/r/HEAD", origin: "binder.test", own: old, want: "", choice: TokenNone},
		"a token about to expire with nothing fresher": {seen: []string{soon}, spec: "gh/o/r/HEAD", origin: "binder.test", own: soon, want: "", choice: TokenNone},
		"a token that is not a JWT is kept":            {seen: []string{fresh}, spec: "gh/o/r/HEAD", origin: "binder.test", own: "opaque", want: "opaque", choice: TokenOwn},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var tk Tokens
			for _, s := range tc.seen {
				tk.Observe("gh/o/r/HEAD", "binder.test", s)
			}
			tk.Observe("gh/o/r/HEAD", "binder.test", "garbage")
			got, choice := tk.ForHeld(tc.spec, tc.origin, tc.own, t0, 10*time.Second)
			if got != tc.want || choice != tc.choice {
				t.Errorf("ForHeld = %q, %v; want %q, %v", got, choice, tc.want, tc.choice)
			}
		})
	}
}
