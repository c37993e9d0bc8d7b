package authz

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoTransportDependencies keeps the decision core pure: it must not
// depend on gRPC, protobuf or Envoy's generated API, so it can be tested and
// reused without them (only the envoy package adapts to Envoy).
func TestNoTransportDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"google.golang.org/grpc", "google.golang.org/protobuf", "github.com/envoyproxy/"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("authz depends on %s", dep)
			}
		}
	}
}
