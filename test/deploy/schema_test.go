package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/yaml"
)

// crdModules are the Go modules whose shipped CRDs define the custom kinds
// the recipes and the chart use, and where in each module the CRDs are.
var crdModules = []struct {
	module, version string
	globs           []string
}{
	// The experimental channel: the ExternalAuth HTTPRoute filter is there.
	{"sigs.k8s.io/gateway-api", "v1.6.3", []string{"config/crd/experimental/*.yaml"}},
	{"github.com/envoyproxy/gateway", "v1.9.1", []string{"charts/gateway-helm/charts/crds/crds/generated/*.yaml"}},
	{"istio.io/api", "v1.32.0", []string{"kubernetes/customresourcedefinitions.gen.yaml"}},
}

var (
	schemaOnce sync.Once
	schemaDir  string
	schemaErr  error
	schemaN    int
)

// schemas writes one JSON Schema per CRD group, kind and version into a
// folder laid out for kubeconform's -schema-location
// DIR/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json, once.
func schemas(t *testing.T) string {
	t.Helper()
	schemaOnce.Do(func() {
		schemaDir = filepath.Join(workDir, "schemas")
		schemaN, schemaErr = writeSchemas(schemaDir)
	})
	if schemaErr != nil {
		t.Fatal(schemaErr)
	}
	return schemaDir
}

func writeSchemas(dir string) (int, error) {
	n := 0
	for _, m := range crdModules {
		out, err := exec.Command("go", "mod", "download", "-json", m.module+"@"+m.version).Output()
		if err != nil {
			return 0, fmt.Errorf("go mod download %s@%s: %w (the Go module proxy or cache must have it)", m.module, m.version, err)
		}
		var info struct{ Dir, Error string }
		if err := json.Unmarshal(out, &info); err != nil || info.Dir == "" {
			return 0, fmt.Errorf("go mod download %s@%s: %v %s", m.module, m.version, err, info.Error)
		}
		var files []string
		for _, g := range m.globs {
			f, _ := filepath.Glob(filepath.Join(info.Dir, g))
			files = append(files, f...)
		}
		if len(files) == 0 {
			return 0, fmt.Errorf("no CRD files in %s@%s (%v)", m.module, m.version, m.globs)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return 0, err
			}
			for _, d := range splitDocs(f, data) {
				k, err := crdSchemas(d.data)
				if err != nil {
					return 0, fmt.Errorf("%s: %w", d.name, err)
				}
				for path, s := range k {
					p := filepath.Join(dir, path)
					if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
						return 0, err
					}
					js, _ := json.Marshal(s)
					if err := os.WriteFile(p, js, 0o644); err != nil {
						return 0, err
					}
					n++
				}
			}
		}
	}
	return n, nil
}

type crd struct {
	Kind string `json:"kind"`
	Spec struct {
		Group string `json:"group"`
		Names struct {
			Kind string `json:"kind"`
		} `json:"names"`
		Versions []struct {
			Name   string `json:"name"`
			Schema struct {
				OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
			} `json:"schema"`
		} `json:"versions"`
	} `json:"spec"`
}

// crdSchemas converts a CustomResourceDefinition document into JSON
// Schemas keyed by their kubeconform path. Other documents give none.
func crdSchemas(data []byte) (map[string]map[string]any, error) {
	var c crd
	if err := yaml.Unmarshal(data, &c); err != nil {
		return nil, err
	}
	if c.Kind != "CustomResourceDefinition" {
		return nil, nil
	}
	out := map[string]map[string]any{}
	for _, v := range c.Spec.Versions {
		s := v.Schema.OpenAPIV3Schema
		if s == nil {
			return nil, fmt.Errorf("%s %s: no openAPIV3Schema", c.Spec.Names.Kind, v.Name)
		}
		closeSchema(s)
		props, _ := s["properties"].(map[string]any)
		if props == nil {
			props = map[string]any{}
			s["properties"] = props
		}
		props["apiVersion"] = map[string]any{"type": "string", "enum": []any{c.Spec.Group + "/" + v.Name}}
		props["kind"] = map[string]any{"type": "string", "enum": []any{c.Spec.Names.Kind}}
		props["metadata"] = objectMeta
		// status is the controller's: whatever it holds is not a typo.
		props["status"] = map[string]any{}
		s["required"] = appendUnique(s["required"], "apiVersion", "kind", "metadata")
		path := fmt.Sprintf("%s/%s_%s.json", c.Spec.Group, strings.ToLower(c.Spec.Names.Kind), v.Name)
		out[path] = s
	}
	return out, nil
}

// closeSchema makes an unknown field an error wherever the API server would
// drop or refuse it: every object schema without additionalProperties and
// without x-kubernetes-preserve-unknown-fields gets additionalProperties
// false (CRD structural schemas leave it open, so kubeconform -strict alone
// passes typos). nullable becomes a JSON Schema "null" type. allOf, anyOf,
// oneOf and not hold partial constraints (required lists), never field
// lists, so they are left alone.
func closeSchema(s map[string]any) {
	if s["x-kubernetes-preserve-unknown-fields"] == true {
		return
	}
	if s["nullable"] == true {
		if typ, ok := s["type"].(string); ok {
			s["type"] = []any{typ, "null"}
		}
		delete(s, "nullable")
	}
	if props, ok := s["properties"].(map[string]any); ok {
		for _, p := range props {
			if m, ok := p.(map[string]any); ok {
				closeSchema(m)
			}
		}
	}
	if ap, ok := s["additionalProperties"].(map[string]any); ok {
		closeSchema(ap)
	}
	if items, ok := s["items"].(map[string]any); ok {
		closeSchema(items)
	}
	_, hasAP := s["additionalProperties"]
	if s["type"] == "object" && !hasAP && s["x-kubernetes-embedded-resource"] != true {
		s["additionalProperties"] = false
	}
}

func appendUnique(list any, add ...string) []any {
	out, _ := list.([]any)
	seen := map[any]bool{}
	for _, v := range out {
		seen[v] = true
	}
	for _, a := range add {
		if !seen[a] {
			out = append(out, a)
		}
	}
	return out
}

// objectMeta is the part of metadata a manifest may set, closed, so that a
// misspelt `namespace` or `labels` is caught too.
var objectMeta = map[string]any{
	"type":                 "object",
	"additionalProperties": false,
	"required":             []any{"name"},
	"properties": map[string]any{
		"name":         map[string]any{"type": "string", "minLength": 1},
		"namespace":    map[string]any{"type": "string"},
		"generateName": map[string]any{"type": "string"},
		"labels":       map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}},
		"annotations":  map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}},
		"finalizers":   map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
	},
}

// TestCRDSchemasClosed checks the conversion itself on one known shape: an
// HTTPRoute's ExternalAuth filter accepts its documented fields and
// refuses a misspelt one, which the CRD's own schema would let through.
func TestCRDSchemasClosed(t *testing.T) {
	dir := schemas(t)
	if schemaN < 30 {
		t.Fatalf("only %d schemas generated from %d modules", schemaN, len(crdModules))
	}
	for _, p := range []string{
		"gateway.networking.k8s.io/httproute_v1.json",
		"gateway.networking.k8s.io/referencegrant_v1beta1.json",
		"gateway.envoyproxy.io/securitypolicy_v1alpha1.json",
		"security.istio.io/authorizationpolicy_v1.json",
		"security.istio.io/peerauthentication_v1.json",
	} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("schema %s: %v", p, err)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "gateway.networking.k8s.io/httproute_v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	ext := dig(s, "properties", "spec", "properties", "rules", "items", "properties", "filters", "items", "properties", "externalAuth")
	if ext == nil {
		t.Fatal("the HTTPRoute schema has no rules[].filters[].externalAuth: not the experimental channel")
	}
	if ext["additionalProperties"] != false {
		t.Errorf("externalAuth additionalProperties = %v, want false", ext["additionalProperties"])
	}
	labels := dig(s, "properties", "metadata", "properties", "labels")
	if _, ok := labels["additionalProperties"].(map[string]any); !ok {
		t.Errorf("metadata.labels must stay an open string map, got %v", labels)
	}
}

func dig(s map[string]any, path ...string) map[string]any {
	for _, p := range path {
		next, ok := s[p].(map[string]any)
		if !ok {
			return nil
		}
		s = next
	}
	return s
}
