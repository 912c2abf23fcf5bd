package file

import (
	"testing"

	"go.uber.org/goleak"
)

// Run owns its watcher goroutines; none may outlive a test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
