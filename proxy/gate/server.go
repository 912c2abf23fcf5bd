package gate

import (
	"net/http"
	"time"
)

// NewServer returns an HTTP server for h that speaks HTTP/1.1 and
// cleartext HTTP/2 (h2c, with prior knowledge, as Envoy sends it): over
// h2c a held launch costs one stream, not one connection.
func NewServer(addr string, h http.Handler) *http.Server {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		Protocols:         &p,
		ReadHeaderTimeout: 10 * time.Second,
		// No write or idle timeouts that would cut a held stream: a held
		// launch lasts as long as its build.
		HTTP2: &http.HTTP2Config{
			// Envoy opens more connections past this; a high limit keeps a
			// large crowd of held launches on few connections.
			MaxConcurrentStreams: 1000,
		},
	}
}
