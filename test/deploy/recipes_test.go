package deploy

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// shipped lists every manifest file the repository ships outside the chart.
func shipped(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, g := range []string{"deploy/recipes/*/*.yaml", "envoy/istio/*.yaml"} {
		f, err := filepath.Glob(filepath.Join(root, g))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f...)
	}
	sort.Strings(files)
	if len(files) < 10 {
		t.Fatalf("only %d shipped manifest files found: %v", len(files), files)
	}
	return files
}

func readDocs(t *testing.T, file string) []doc {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(root, file)
	return splitDocs(rel, data)
}

// TestShippedManifests validates every document of every shipped recipe and
// manifest strictly.
func TestShippedManifests(t *testing.T) {
	var docs []doc
	for _, f := range shipped(t) {
		docs = append(docs, readDocs(t, f)...)
	}
	mustValidate(t, docs)
}

// plantedTypos misspell one optional field in each recipe, where only a
// strict validation notices: the API server would silently drop the field
// (and with it, e.g., fail-closed behaviour or the application binding).
var plantedTypos = []struct {
	file, from, to string
}{
	{"deploy/recipes/envoy-gateway/securitypolicy.yaml", "    failOpen: false", "    failopen: false"},
	{"deploy/recipes/envoy-gateway/securitypolicy.yaml", "    contextExtensions:", "    contextExtension:"},
	{"deploy/recipes/envoy-gateway/securitypolicy.yaml", "      kind: SecurityPolicy\n      namespace: payroll", "      kind: SecurityPolicy\n      namespaces: payroll"},
	{"deploy/recipes/envoy-gateway/securitypolicy-http.yaml", "    headersToExtAuth:", "    headersToExtauth:"},
	{"deploy/recipes/gateway-api/httproute-externalauth.yaml", "            protocol: GRPC", "            protocol: GRPC\n            forwardbody: {maxSize: 0}"},
	{"deploy/recipes/gateway-api/httproute-externalauth.yaml", "  hostnames:", "  hostname:"},
	{"deploy/recipes/istio/mesh-config.yaml", "        failOpen: false", "        failopen: false"},
	{"deploy/recipes/istio/authorizationpolicy-ambient.yaml", "            notPaths:", "            notPath:"},
	{"deploy/recipes/istio/authorizationpolicy-sidecar.yaml", "    matchLabels:", "    matchlabels:"},
	{"envoy/istio/accessgate.yaml", "            readOnlyRootFilesystem: true", "            readOnlyRootFileSystem: true"},
	{"envoy/istio/mesh-config.yaml", "          statusOnError:", "          statusOnErr:"},
	{"envoy/istio/peer-authentication.yaml", "  mtls:", "  mTLS:"},
}

// TestPlantedTypos mutates a copy of each recipe with one misspelt field and
// requires the validation to fail on that document, while the unmutated
// file passes (TestShippedManifests): a validation that accepted anything
// would fail here.
func TestPlantedTypos(t *testing.T) {
	covered := map[string]bool{}
	for _, tc := range plantedTypos {
		covered[tc.file] = true
		t.Run(filepath.Base(tc.file)+"/"+strings.TrimSpace(tc.to), func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(root, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(data), tc.from); n != 1 {
				t.Fatalf("%q appears %d times in %s, want once", tc.from, n, tc.file)
			}
			mutated := strings.Replace(string(data), tc.from, tc.to, 1)
			docs := splitDocs(tc.file, []byte(mutated))
			errs := validate(t, docs)
			if len(errs) != 1 {
				t.Fatalf("want exactly the mutated document refused, got %d errors: %v", len(errs), errs)
			}
			// The error names the misspelt field (the last line of `to`).
			lines := strings.Split(tc.to, "\n")
			field, _, _ := strings.Cut(strings.TrimSpace(lines[len(lines)-1]), ":")
			for name, err := range errs {
				if !strings.Contains(err.Error(), field) {
					t.Errorf("%s: error does not name %q: %v", name, field, err)
				}
			}
		})
	}
	// Every recipe under deploy/recipes has at least one planted typo.
	recipes, _ := filepath.Glob(filepath.Join(root, "deploy/recipes/*/*.yaml"))
	for _, f := range recipes {
		rel, _ := filepath.Rel(root, f)
		if !covered[rel] {
			t.Errorf("%s has no planted typo in plantedTypos", rel)
		}
	}
}
