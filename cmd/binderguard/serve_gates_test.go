package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/test/fakebinder"
	"github.com/binderguard/binderguard/test/testenv"
	"github.com/binderguard/binderguard/xds/bootstrap"
	"github.com/binderguard/binderguard/xds/peers"
)

// With --gate-service (the chart's), a real Envoy learns the gates from
// the Service's EndpointSlices as a real API server holds them: a replica
// counts as soon as it has an address, Ready or not, and stops counting
// when it starts terminating. Envoy's /ready (the chart's startup probe)
// follows: 503 while no gate is reachable, when launches would go around
// the gates, and 200 once one is.
func TestServeFollowsTheGateServiceEndpointSlices(t *testing.T) {
	out := testOutput(t)
	log := newLogger(out, slog.LevelInfo)
	ctrllog.SetLogger(logr.FromSlogHandler(log.Handler()))
	env := testenv.Start(t)
	ns := env.Namespace(t)

	fb, err := fakebinder.New(fakebinder.Config{BuildTime: 50 * time.Millisecond, LaunchTime: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	binder := httptest.NewServer(fb.Handler())
	t.Cleanup(func() { fb.Close(); binder.Close() })

	// The API server refuses loopback addresses in an EndpointSlice: the
	// gate listens on this machine's own.
	hostIP := nonLoopbackIP(t)
	envoyAddr, envoyAdmin, envoyStats := freeAddr(t), freeAddr(t), freeAddr(t)
	s, ctx := startServeWith(t, env.Config, []string{
		"--upstream", binder.URL, "--envoy-listen", envoyAddr, "--webhook=false", "--leader-elect=false",
		"--gate-addr", net.JoinHostPort(hostIP, "0"), "--xds-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--health-addr", "127.0.0.1:0",
		"--namespace", ns, "--gate-service", "binderguard-gate",
	}, func(k string) string {
		if k == "POD_NAMESPACE" {
			return ns
		}
		return ""
	}, log)
	startEnvoy(t, ctx, out, s.xdsLis.Addr().String(), envoyAdmin, envoyStats)

	ready := func() (int, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+envoyStats+bootstrap.ReadyPath, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	// class launches a fresh spec through Envoy and returns the class the
	// gate gave it ("" when it went straight to BinderHub).
	n := 0
	class := func() (string, error) {
		n++
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/build/gh/org/repo%d/HEAD", envoyAddr, n), nil)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		// To ready, not to the end: BinderHub holds the stream a minute
		// after it.
		for r := sse.NewReader(resp.Body); ; {
			ev, err := r.Next()
			if err != nil {
				return "", fmt.Errorf("launch ended before ready: %w", err)
			}
			if ev.Phase == sse.PhaseReady {
				break
			}
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("launch: status %d", resp.StatusCode)
		}
		return resp.Header.Get(gate.ClassHeader), nil
	}
	through := func(want bool) func() error {
		return func() error {
			code, err := ready()
			if err != nil {
				return err
			}
			if (code == http.StatusOK) != want {
				return fmt.Errorf("%s: %d", bootstrap.ReadyPath, code)
			}
			cl, err := class()
			if err != nil {
				return err
			}
			if (cl != "") != want {
				return fmt.Errorf("a launch had class %q", cl)
			}
			return nil
		}
	}

	// No slice yet: Envoy has no gate, launches go straight to BinderHub
	// (once the edge is programmed), and /ready says not to send any.
	testenv.Eventually(t, 20*time.Second, "launches around the gates and /ready 503 while the Service lists no gate", through(false))
	gatePeersCheck := func() (int, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.healthLis.Addr().String()+"/readyz/gate-peers", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := gatePeersCheck(); code == http.StatusOK || !strings.Contains(body, "lists no gate") {
		t.Errorf("/readyz/gate-peers with no gate listed: %d %q, want a failure saying so", code, body)
	}

	gatePort := int32(s.gateLis.Addr().(*net.TCPAddr).Port)
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: "binderguard-gate-x1", Labels: peers.Selector("binderguard-gate")},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: new(peers.PortName), Port: &gatePort}},
		// Not Ready: the pod is starting, as when its Envoy's startup
		// probe is still waiting for a gate.
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{hostIP}, Conditions: discoveryv1.EndpointConditions{Ready: new(false)}}},
	}
	if err := env.Client.Create(ctx, slice); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "/ready 200 and launches through the gate once the Service lists it, not Ready yet", through(true))
	if code, body := gatePeersCheck(); code != http.StatusOK {
		t.Errorf("/readyz/gate-peers with a gate listed: %d %q", code, body)
	}

	slice.Endpoints[0].Conditions.Terminating = new(true)
	if err := env.Client.Update(ctx, slice); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the gate left the edge once terminating", through(false))
	if st := fb.Stats(); st.Launches != int64(n) {
		t.Errorf("BinderHub launched %d of %d launches", st.Launches, n)
	}
}

// nonLoopbackIP is an IPv4 address of this machine other than loopback.
func nonLoopbackIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Fatalf("this test needs an IPv4 address other than loopback (an EndpointSlice may not list loopback); interfaces have %v", addrs)
	return ""
}
