package mint

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoHTTPServerCode keeps the package callable from the decision core,
// which answers requests without net/http: mint itself imports neither
// net/http nor a gRPC package (what its dependencies need is theirs).
func TestNoHTTPServerCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for imp := range strings.Lines(string(out)) {
		imp = strings.TrimSpace(imp)
		if imp == "net/http" || strings.HasPrefix(imp, "google.golang.org/grpc") || strings.HasPrefix(imp, "github.com/accessgate/accessgate/authz") {
			t.Errorf("login/mint imports %s", imp)
		}
	}
}
