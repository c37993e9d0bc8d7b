package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"google.golang.org/protobuf/encoding/protojson"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// typed are the kinds validated by a strict decode into their Go API types
// (no small module carries their JSON Schemas): an unknown field, a
// duplicate key or a wrong type is an error.
var typed = map[string]func() any{
	"v1/ConfigMap":                            func() any { return &corev1.ConfigMap{} },
	"v1/Namespace":                            func() any { return &corev1.Namespace{} },
	"v1/Secret":                               func() any { return &corev1.Secret{} },
	"v1/Service":                              func() any { return &corev1.Service{} },
	"v1/ServiceAccount":                       func() any { return &corev1.ServiceAccount{} },
	"apps/v1/Deployment":                      func() any { return &appsv1.Deployment{} },
	"policy/v1/PodDisruptionBudget":           func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler":  func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"networking.k8s.io/v1/NetworkPolicy":      func() any { return &networkingv1.NetworkPolicy{} },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return &monitoringv1.ServiceMonitor{} },
}

// crdGroups are the API groups whose kinds kubeconform checks against the
// schemas generated from the CRD modules.
var crdGroups = []string{
	"gateway.networking.k8s.io", "gateway.networking.x-k8s.io",
	"gateway.envoyproxy.io",
	"security.istio.io", "networking.istio.io", "telemetry.istio.io", "extensions.istio.io",
}

type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
}

// validate checks every document strictly and returns one error per
// invalid document (nil when all are valid). Every document must be of a
// kind some validator knows: an unknown kind is an error too, so nothing
// passes unchecked.
func validate(t *testing.T, docs []doc) map[string]error {
	t.Helper()
	errs := map[string]error{}
	var forKubeconform []doc
	for _, d := range docs {
		var h header
		if err := yaml.Unmarshal(d.data, &h); err != nil {
			errs[d.name] = err
			continue
		}
		key := h.APIVersion + "/" + h.Kind
		group, _, _ := strings.Cut(h.APIVersion, "/")
		switch {
		case h.APIVersion == "" && h.Kind == "":
			errs[d.name] = validateMeshValues(d.data)
		case typed[key] != nil:
			errs[d.name] = strictDecode(d.data, typed[key]())
		case key == "install.istio.io/v1alpha1/IstioOperator":
			errs[d.name] = validateIstioOperator(d.data)
		case key == "kustomize.config.k8s.io/v1beta1/Kustomization":
			errs[d.name] = strictDecode(d.data, &kustomization{})
		case contains(crdGroups, group):
			forKubeconform = append(forKubeconform, d)
		default:
			errs[d.name] = fmt.Errorf("%s: no validator knows this kind", key)
		}
	}
	for name, err := range kubeconformDocs(t, forKubeconform) {
		errs[name] = err
	}
	for k, v := range errs {
		if v == nil {
			delete(errs, k)
		}
	}
	return errs
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// strictDecode decodes YAML into v the way the API server does: field
// names match case-sensitively (encoding/json alone would take
// readOnlyRootFileSystem for readOnlyRootFilesystem), and unknown fields
// and duplicate keys are errors.
func strictDecode(data []byte, v any) error {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return err
	}
	strict, err := sigsjson.UnmarshalStrict(js, v, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// kustomization is the part of kustomize's Kustomization the shipped one
// uses; anything else in it is an error.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
}

// validateMeshValues checks istiod Helm values that carry only meshConfig
// against Istio's MeshConfig API type (protojson refuses unknown fields).
func validateMeshValues(data []byte) error {
	var v struct {
		MeshConfig json.RawMessage `json:"meshConfig"`
	}
	if err := strictDecode(data, &v); err != nil {
		return fmt.Errorf("not a manifest (no apiVersion/kind) and not istiod meshConfig values: %w", err)
	}
	return meshConfig(v.MeshConfig)
}

// validateIstioOperator checks an IstioOperator that sets only meshConfig;
// the operator's own CRD is not in istio.io/api, MeshConfig is.
func validateIstioOperator(data []byte) error {
	var v struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
		Spec struct {
			MeshConfig json.RawMessage `json:"meshConfig"`
		} `json:"spec"`
	}
	if err := strictDecode(data, &v); err != nil {
		return err
	}
	return meshConfig(v.Spec.MeshConfig)
}

func meshConfig(raw json.RawMessage) error {
	if len(raw) == 0 {
		return fmt.Errorf("no meshConfig")
	}
	var mc meshv1alpha1.MeshConfig
	if err := (protojson.UnmarshalOptions{}).Unmarshal(raw, &mc); err != nil {
		return fmt.Errorf("meshConfig: %w", err)
	}
	return nil
}

// kubeconformDocs runs kubeconform -strict on the documents, against the
// generated CRD schemas only (no download: a kind without a schema there is
// an error, not a skip).
func kubeconformDocs(t *testing.T, docs []doc) map[string]error {
	t.Helper()
	if len(docs) == 0 {
		return nil
	}
	bin := kubeconform(t)
	sdir := schemas(t)
	dir, err := os.MkdirTemp(workDir, "kc-")
	if err != nil {
		t.Fatal(err)
	}
	byFile := map[string]string{}
	var files []string
	for i, d := range docs {
		f := filepath.Join(dir, fmt.Sprintf("%03d.yaml", i))
		if err := os.WriteFile(f, d.data, 0o644); err != nil {
			t.Fatal(err)
		}
		byFile[f] = d.name
		files = append(files, f)
	}
	out, runErr := run(bin, append([]string{"-strict", "-verbose", "-output", "json",
		"-schema-location", sdir + "/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json"}, files...)...)
	var res struct {
		Resources []struct {
			Filename         string `json:"filename"`
			Kind             string `json:"kind"`
			Name             string `json:"name"`
			Status           string `json:"status"`
			Msg              string `json:"msg"`
			ValidationErrors []struct {
				Path string `json:"path"`
				Msg  string `json:"msg"`
			} `json:"validationErrors"`
		} `json:"resources"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("kubeconform output %q: %v (run: %v)", out, err, runErr)
	}
	errs := map[string]error{}
	seen := map[string]bool{}
	for _, r := range res.Resources {
		name := byFile[r.Filename]
		seen[name] = true
		if r.Status == "statusValid" {
			continue
		}
		var msgs []string
		for _, v := range r.ValidationErrors {
			msgs = append(msgs, v.Path+": "+v.Msg)
		}
		if len(msgs) == 0 {
			msgs = append(msgs, r.Msg)
		}
		errs[name] = fmt.Errorf("%s %s: %s: %s", r.Kind, r.Name, strings.TrimPrefix(r.Status, "status"), strings.Join(msgs, "; "))
	}
	// -verbose lists valid documents too: one missing was not checked.
	for _, d := range docs {
		if !seen[d.name] {
			errs[d.name] = fmt.Errorf("kubeconform reported nothing for it (run: %v)", runErr)
		}
	}
	return errs
}

// mustValidate fails the test for every invalid document.
func mustValidate(t *testing.T, docs []doc) {
	t.Helper()
	if len(docs) == 0 {
		t.Fatal("no documents to validate")
	}
	errs := validate(t, docs)
	names := make([]string, 0, len(errs))
	for n := range errs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t.Errorf("%s: %v", n, errs[n])
	}
}
