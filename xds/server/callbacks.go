package server

import (
	"context"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
)

// callbacks watch the ADS streams: connections, ACKs and NACKs.
func (s *Server) callbacks() serverv3.Callbacks {
	return serverv3.CallbackFuncs{
		StreamOpenFunc:        func(_ context.Context, id int64, _ string) error { return s.streamOpened(id, "sotw") },
		StreamClosedFunc:      s.streamClosed,
		DeltaStreamOpenFunc:   func(_ context.Context, id int64, _ string) error { return s.streamOpened(id, "delta") },
		DeltaStreamClosedFunc: s.streamClosed,
		StreamRequestFunc: func(id int64, req *discoveryv3.DiscoveryRequest) error {
			if req.GetResponseNonce() == "" {
				return nil // initial subscription, neither ACK nor NACK
			}
			if d := req.GetErrorDetail(); d != nil {
				s.nack(id, req.GetNode().GetId(), req.GetTypeUrl(), req.GetResponseNonce(), d.GetMessage())
				return nil
			}
			s.ack(req.GetTypeUrl(), req.GetVersionInfo())
			return nil
		},
		StreamDeltaRequestFunc: func(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
			if req.GetResponseNonce() == "" {
				return nil
			}
			if d := req.GetErrorDetail(); d != nil {
				s.nack(id, req.GetNode().GetId(), req.GetTypeUrl(), req.GetResponseNonce(), d.GetMessage())
				return nil
			}
			s.mu.Lock()
			v, ok := s.deltaNonces[req.GetResponseNonce()]
			delete(s.deltaNonces, req.GetResponseNonce())
			s.mu.Unlock()
			if ok {
				s.ack(req.GetTypeUrl(), v)
			}
			return nil
		},
		StreamDeltaResponseFunc: func(id int64, req *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
			s.mu.Lock()
			// Bounded: Envoy answers every response, and each answer deletes its nonce.
			if len(s.deltaNonces) < 1024 {
				s.deltaNonces[resp.GetNonce()] = resp.GetSystemVersionInfo()
			}
			s.mu.Unlock()
		},
	}
}

func (s *Server) ack(typ, version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log.Debug("envoy acked", "type", shortType(typ), "version", version)
	if s.acked[typ] == version {
		return
	}
	s.acked[typ] = version
	close(s.ackCh)
	s.ackCh = make(chan struct{})
	s.metrics.acks.WithLabelValues(shortType(typ)).Inc()
}

func (s *Server) nack(stream int64, node, typ, nonce, reason string) {
	s.mu.Lock()
	s.nacks++
	delete(s.deltaNonces, nonce)
	s.mu.Unlock()
	s.metrics.nacks.WithLabelValues(shortType(typ)).Inc()
	s.log.Error("envoy rejected config; it keeps serving the last accepted one",
		"stream", stream, "node", node, "type", shortType(typ), "reason", reason)
}

// streamOpened counts and logs a new ADS stream of either mode.
func (s *Server) streamOpened(id int64, mode string) error {
	s.metrics.streams.Inc()
	s.log.Info("envoy connected", "stream", id, "mode", mode)
	return nil
}

// streamClosed counts and logs the end of an ADS stream of either mode.
func (s *Server) streamClosed(id int64, node *corev3.Node) {
	s.metrics.streams.Dec()
	s.log.Info("envoy disconnected", "stream", id, "node", node.GetId())
}
