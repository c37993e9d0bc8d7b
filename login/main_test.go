package login

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: Close must stop
// every discovery loop.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
