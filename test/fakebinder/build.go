package fakebinder

import (
	"net/http"

	"github.com/binderguard/binderguard/proxy/sse"
)

type imageState int

const (
	stateAbsent imageState = iota
	stateBuilding
	stateBuilt
)

// image is one image name's build state.
type image struct {
	state imageState
}

func (s *Server) loadFactorLocked() float64 { return 1 }

func (s *Server) serveBuild(w http.ResponseWriter, r *http.Request) {
	sw := sse.Start(w)
	_ = sw.Write(sse.Failed(http.StatusNotImplemented, "fakebinder: not implemented yet\n"))
}
