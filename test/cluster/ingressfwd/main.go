// Command ingressfwd stands in for an ingress controller in binderguard's
// test cluster, and only there: the cluster has no ingress controller, so
// this forwarder listens on loopback (BINDER_URL) and sends every request to
// the backend Service that the `binderhub` Ingress names in
// spec.rules[0].http.paths[0].backend.service, through that Service's
// ClusterIP (which kube-proxy makes reachable from the host).
//
// It follows the Ingress with an informer, so `kubectl patch ingress
// binderhub` (the README's switch from `binder` to `binderguard`) moves
// traffic within a second. --ingress may name several Ingresses: the first
// that exists is followed, so with `binderhub,binderguard` BinderHub's own
// Ingress wins while it exists (as the older of two Ingresses for one host
// does in ingress-nginx), and once BinderHub's is switched off
// (ingress.enabled: false) the binderguard chart's Ingress takes the host. Like ingress-nginx it streams responses without
// buffering (Server-Sent Events), passes Host, sets X-Real-Ip to the client
// address and appends it to X-Forwarded-For.
//
// It must never be used outside tests: it honours one rule and one path, has
// no TLS, and trusts whatever the Ingress says.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the test cluster")
	listen := flag.String("listen", "127.0.0.1:30080", "loopback address to serve BINDER_URL on")
	namespace := flag.String("namespace", "binderhub", "namespace of the Ingress and its backends")
	ingress := flag.String("ingress", "binderhub", "comma-separated names of the Ingresses to follow: the first that exists")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "ingressfwd")
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	if err := run(ctx, log, *kubeconfig, *listen, *namespace, *ingress); err != nil {
		log.Error("stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, kubeconfig, listen, namespace, ingress string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("loading kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.Proxy = nil // the cluster is on a local bridge: never an environment proxy
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("building the client: %w", err)
	}
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(namespace))
	ingresses := f.Networking().V1().Ingresses().Lister().Ingresses(namespace)
	services := f.Core().V1().Services().Lister().Services(namespace)
	f.Start(ctx.Done())
	defer f.Shutdown()
	for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("syncing the %v informer", typ)
		}
	}

	// target resolves the Ingress's first backend to http://<ClusterIP>:<port>
	// on every request, from the informers' caches.
	target := func() (*url.URL, error) {
		var (
			ing *networkingv1.Ingress
			err error
		)
		for name := range strings.SplitSeq(ingress, ",") {
			if ing, err = ingresses.Get(name); err == nil {
				break
			}
		}
		if ing == nil {
			return nil, fmt.Errorf("reading ingresses %s/{%s}: %w", namespace, ingress, err)
		}
		b, err := firstBackend(ing)
		if err != nil {
			return nil, err
		}
		svc, err := services.Get(b.Name)
		if err != nil {
			return nil, fmt.Errorf("reading service %s/%s: %w", namespace, b.Name, err)
		}
		want := intstr.FromInt32(b.Port.Number)
		if b.Port.Name != "" {
			want = intstr.FromString(b.Port.Name)
		}
		for _, p := range svc.Spec.Ports {
			if (want.Type == intstr.Int && p.Port == want.IntVal) || (want.Type == intstr.String && p.Name == want.StrVal) {
				return &url.URL{Scheme: "http", Host: net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(int(p.Port)))}, nil
			}
		}
		return nil, fmt.Errorf("service %s/%s has no port %s", namespace, b.Name, want.String())
	}

	// One connection per request: an ingress controller (ingress-nginx's
	// balancer) picks an endpoint per request, so a terminating pod gets
	// no new requests once it leaves the endpoints. Through the ClusterIP a
	// kept-alive connection would stay pinned to that pod (conntrack),
	// which no ingress controller does.
	transport := &http.Transport{
		Proxy:             nil,
		DialContext:       (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		DisableKeepAlives: true,
	}
	type targetKey struct{}
	proxy := &httputil.ReverseProxy{
		Transport:     transport,
		FlushInterval: -1, // SSE: every write reaches the client at once
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(r.In.Context().Value(targetKey{}).(*url.URL))
			r.Out.Host = r.In.Host
			// ingress-nginx: X-Real-IP $remote_addr, X-Forwarded-For appended.
			r.SetXForwarded()
			if ip, _, err := net.SplitHostPort(r.In.RemoteAddr); err == nil {
				r.Out.Header.Set("X-Real-Ip", ip)
			}
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Warn("proxying", "path", r.URL.Path, "err", err)
			http.Error(w, "ingressfwd: "+err.Error(), http.StatusBadGateway)
		},
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := target()
		if err != nil {
			log.Warn("no backend", "err", err)
			http.Error(w, "ingressfwd: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), targetKey{}, u)))
	})

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", listen, err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Info("serving", "addr", ln.Addr().String(), "ingress", namespace+"/"+ingress)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving on %s: %w", listen, err)
	}
	return nil
}

// firstBackend returns spec.rules[0].http.paths[0].backend.service.
func firstBackend(ing *networkingv1.Ingress) (*networkingv1.IngressServiceBackend, error) {
	if len(ing.Spec.Rules) == 0 || ing.Spec.Rules[0].HTTP == nil || len(ing.Spec.Rules[0].HTTP.Paths) == 0 ||
		ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service == nil {
		return nil, fmt.Errorf("ingress %s/%s has no spec.rules[0].http.paths[0].backend.service", ing.Namespace, ing.Name)
	}
	return ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service, nil
}
