package launchstorm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// ErrUnreachable is returned by Run when the URL's host cannot be dialled.
var ErrUnreachable = errors.New("unreachable")

// unreachableError is ErrUnreachable with the dial error, kept to one line.
type unreachableError struct {
	url string
	err error
}

func (e *unreachableError) Error() string   { return "cannot reach " + e.url + ": " + e.err.Error() }
func (e *unreachableError) Unwrap() []error { return []error{e.err, ErrUnreachable} }

// preflightTimeout bounds the reachability check before a storm.
const preflightTimeout = 5 * time.Second

// Run storms o.URL with o.Clients launches of o.Spec (and the o.Mix
// background launches at the same time), waits for every client to end,
// and summarises. It returns an error only for bad options or an
// unreachable URL; failed launches are data in the Summary. Every
// goroutine it starts has ended when it returns.
func Run(ctx context.Context, o Config) (Summary, error) {
	base, err := o.validate()
	if err != nil {
		return Summary{}, err
	}
	if err := preflight(ctx, base); err != nil {
		return Summary{}, err
	}
	total := o.Clients
	for _, m := range o.Mix {
		total += m.Clients
	}
	hc := o.HTTPClient
	if hc == nil {
		tr := newTransport(total)
		defer tr.CloseIdleConnections()
		hc = &http.Client{Transport: tr}
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	l := &launcher{hc: hc, retry: o.Retry, timeout: timeout, headers: o.Headers, tracker: o.Tracker}

	start := time.Now()
	results := make([]Result, o.Clients)
	var wg sync.WaitGroup
	target := buildURL(base, o.Spec)
	for i := range o.Clients {
		wg.Go(func() {
			if !sleep(ctx, spread(o.Ramp, i, o.Clients)) {
				results[i] = Result{Index: i, Spec: o.Spec, Outcome: OutcomeError, Err: ctx.Err(), Message: "not started: " + ctx.Err().Error()}
				return
			}
			results[i] = l.launch(ctx, i, o.Spec, target)
		})
	}
	var mix [][]Result
	next := o.Clients
	for _, m := range o.Mix {
		res := make([]Result, m.Clients)
		mix = append(mix, res)
		first := next
		next += m.Clients
		murl := buildURL(base, m.Spec)
		for j := range m.Clients {
			wg.Go(func() {
				d := time.Duration(m.Delay) + mixOffset(m, j)
				if !sleep(ctx, d) {
					res[j] = Result{Index: first + j, Spec: m.Spec, Outcome: OutcomeError, Err: ctx.Err(), Message: "not started: " + ctx.Err().Error()}
					return
				}
				res[j] = l.launch(ctx, first+j, m.Spec, murl)
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)

	s := Summarize(results)
	s.DurationS = seconds(elapsed)
	if len(o.Mix) > 0 {
		var all []Result
		specs := map[string][]Result{}
		for i, res := range mix {
			all = append(all, res...)
			specs[o.Mix[i].Spec] = append(specs[o.Mix[i].Spec], res...)
		}
		ms := Summarize(all)
		ms.DurationS = s.DurationS
		if len(specs) > 1 {
			ms.Specs = map[string]Summary{}
			for spec, res := range specs {
				ms.Specs[spec] = Summarize(res)
			}
		}
		s.Mix = &ms
	}
	if o.StatsURL != "" {
		stats, err := fetchStats(ctx, hc, o.StatsURL)
		if err != nil {
			s.StatsError = err.Error()
		} else {
			s.SimStats = stats
		}
	}
	return s, nil
}

// spread is client i's start offset when n clients start evenly over ramp.
func spread(ramp time.Duration, i, n int) time.Duration {
	if ramp <= 0 || n <= 1 {
		return 0
	}
	return time.Duration(int64(ramp) * int64(i) / int64(n))
}

// mixOffset is mix client j's start offset after the entry's delay.
func mixOffset(m MixEntry, j int) time.Duration {
	if m.Interval > 0 {
		return time.Duration(m.Interval) * time.Duration(j)
	}
	return spread(time.Duration(m.Ramp), j, m.Clients)
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// newTransport allows n concurrent streams to one host: no per-host
// connection cap, idle pool sized to the storm, no proxies from the
// environment (storms go to loopback), no compression (SSE is small and
// must stream).
func newTransport(n int) *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxConnsPerHost:       0,
		MaxIdleConns:          n + 16,
		MaxIdleConnsPerHost:   n + 16,
		IdleConnTimeout:       30 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
}

// preflight dials the URL's host once so an unreachable URL is one clear
// error instead of N transport errors.
func preflight(ctx context.Context, u *url.URL) error {
	host := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	ctx, cancel := context.WithTimeout(ctx, preflightTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return &unreachableError{url: u.Redacted(), err: err}
	}
	return c.Close()
}

// maxStatsSize bounds the stats document read.
const maxStatsSize = 1 << 20

func fetchStats(ctx context.Context, hc *http.Client, statsURL string) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, statsURL, nil)
	if err != nil {
		return nil, fmt.Errorf("fetching stats: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching stats: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxStatsSize))
	if err != nil {
		return nil, fmt.Errorf("reading stats: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching stats: HTTP %d", resp.StatusCode)
	}
	if !json.Valid(body) {
		return nil, fmt.Errorf("fetching stats: %s did not return JSON", statsURL)
	}
	return json.RawMessage(body), nil
}
