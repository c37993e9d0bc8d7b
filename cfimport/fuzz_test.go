package cfimport

import (
	"errors"
	"os"
	"testing"

	"github.com/accessgate/accessgate/policies"
)

// FuzzImport: any --apps input either fails with an error or yields a file
// that validate accepts; never a panic.
func FuzzImport(f *testing.F) {
	for _, name := range []string{"apps.json", "sdk_apps.json", "apps_widening.json"} {
		if b, err := os.ReadFile("testdata/" + name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(app(`{"id": "p", "name": "P", "decision": "non_identity", "include": [{"group": {"id": "g-nested"}}, {"service_token": {"token_id": "t1"}}]}`)))
	f.Add([]byte(`{"result": {"id": "a", "aud": "x", "domain": "*.a.example.com/x/*", "cors_headers": {"allowed_origins": ["null", "*"], "max_age": 99999}}}`))
	groups, _ := os.ReadFile("testdata/groups.json")
	pols, _ := os.ReadFile("testdata/policies.json")
	tokens, _ := os.ReadFile("testdata/service_tokens.json")
	f.Fuzz(func(t *testing.T, apps []byte) {
		res, err := Import(Options{TeamDomain: teamURL, Apps: apps, Groups: groups, Policies: pols, ServiceTokens: tokens})
		if err != nil {
			var ie *Error
			if errors.As(err, &ie) && len(ie.Problems) == 0 {
				t.Fatal("an import Error with no problem")
			}
			return
		}
		if _, err := policies.Parse("fuzz.yaml", res.YAML); err != nil {
			t.Fatalf("imported file does not validate: %v\n%s", err, res.YAML)
		}
	})
}
