package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/binderguard/binderguard/test/testenv"
)

// TestServeWithoutTheWebhook runs serve with --webhook=false (the chart's
// webhook.enabled: false) against a real API server: it turns ready with
// no certificate anywhere (the default self-signed mode would wait for
// its Secret to be mounted) and serves nothing on the webhook port.
func TestServeWithoutTheWebhook(t *testing.T) {
	log := newLogger(testOutput(t), slog.LevelInfo)
	ctrllog.SetLogger(logr.FromSlogHandler(log.Handler()))
	env := testenv.Start(t)
	ns := env.Namespace(t)
	webhookAddr := freeAddr(t)
	_, webhookPort, _ := net.SplitHostPort(webhookAddr)
	s, ctx := startServeWith(t, env.Config, []string{
		"--upstream", "http://binder.example", "--webhook=false", "--webhook-port", webhookPort,
		"--gate-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--health-addr", "127.0.0.1:0",
		"--namespace", ns, "--leader-elect=false",
	}, func(string) string { return "" }, log)
	readyz := "http://" + s.healthLis.Addr().String() + "/readyz?verbose"
	var checks string
	testenv.Eventually(t, 20*time.Second, "/readyz answers 200 without a webhook certificate", func() error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, readyz, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		checks = string(b)
		return nil
	})
	if strings.Contains(checks, "webhook") {
		t.Errorf("/readyz checks the webhook although it is off:\n%s", checks)
	}
	if conn, err := net.DialTimeout("tcp", webhookAddr, time.Second); err == nil {
		conn.Close()
		t.Errorf("something listens on the webhook port %s with --webhook=false", webhookAddr)
	}
}
