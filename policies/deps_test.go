package policies

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoTransportDeps keeps the policy compiler free of gRPC, protobuf and
// Envoy types: it is shared by the CLI's validate command and the decision
// core, which must stay testable without a server.
func TestNoTransportDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := []string{"google.golang.org/grpc", "google.golang.org/protobuf", "github.com/envoyproxy"}
	for dep := range strings.Lines(string(out)) {
		dep = strings.TrimSpace(dep)
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("policies depends on %s", dep)
			}
		}
	}
}
