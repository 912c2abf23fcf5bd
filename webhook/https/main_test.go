package https_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every server the tests start is stopped: no goroutine may outlive them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
