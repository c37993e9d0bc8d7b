package test

import (
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/accessgate/accessgate/policies"
)

const istioDir = "../envoy/istio"

// object is the subset of every Kubernetes and Istio kind that the
// manifests must agree on. Unknown fields are ignored; the checks below name
// every field they rely on.
type object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Data map[string]string `json:"data"`
	Spec struct {
		// Deployment
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
			Spec podSpec `json:"spec"`
		} `json:"template"`
		// Service: selector is a plain map there, so it is read separately.
		Ports []struct {
			Name       string `json:"name"`
			Port       int    `json:"port"`
			TargetPort any    `json:"targetPort"`
		} `json:"ports"`
		// AuthorizationPolicy
		Action   string `json:"action"`
		Provider struct {
			Name string `json:"name"`
		} `json:"provider"`
		Rules []map[string]any `json:"rules"`
		// PeerAuthentication
		MTLS struct {
			Mode string `json:"mode"`
		} `json:"mtls"`
		// IstioOperator
		MeshConfig struct {
			ExtensionProviders []struct {
				Name              string `json:"name"`
				EnvoyExtAuthzGrpc *struct {
					Service       string `json:"service"`
					Port          int    `json:"port"`
					Timeout       string `json:"timeout"`
					FailOpen      *bool  `json:"failOpen"`
					StatusOnError string `json:"statusOnError"`
				} `json:"envoyExtAuthzGrpc"`
			} `json:"extensionProviders"`
		} `json:"meshConfig"`
	} `json:"spec"`
	raw  map[string]any
	file string
}

type podSpec struct {
	SecurityContext struct {
		RunAsNonRoot *bool `json:"runAsNonRoot"`
		RunAsUser    int   `json:"runAsUser"`
	} `json:"securityContext"`
	Containers []struct {
		Name string   `json:"name"`
		Args []string `json:"args"`
		Env  []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"env"`
		Ports []struct {
			Name          string `json:"name"`
			ContainerPort int    `json:"containerPort"`
		} `json:"ports"`
		LivenessProbe   *probe `json:"livenessProbe"`
		ReadinessProbe  *probe `json:"readinessProbe"`
		SecurityContext struct {
			AllowPrivilegeEscalation *bool `json:"allowPrivilegeEscalation"`
			ReadOnlyRootFilesystem   bool  `json:"readOnlyRootFilesystem"`
		} `json:"securityContext"`
		VolumeMounts []struct {
			Name      string `json:"name"`
			MountPath string `json:"mountPath"`
			SubPath   string `json:"subPath"`
		} `json:"volumeMounts"`
	} `json:"containers"`
	Volumes []struct {
		Name      string `json:"name"`
		ConfigMap *struct {
			Name string `json:"name"`
		} `json:"configMap"`
	} `json:"volumes"`
}

type probe struct {
	HTTPGet *struct {
		Path string `json:"path"`
		Port any    `json:"port"`
	} `json:"httpGet"`
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// loadManifests parses every document of every YAML file in envoy/istio.
func loadManifests(t *testing.T) map[string][]*object {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(istioDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", istioDir, err)
	}
	byKind := map[string][]*object{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSep.Split(string(data), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			o := &object{file: fmt.Sprintf("%s#%d", filepath.Base(f), i)}
			if err := yaml.UnmarshalStrict([]byte(doc), &o.raw); err != nil {
				t.Fatalf("%s: %v", o.file, err)
			}
			if err := yaml.Unmarshal([]byte(doc), o); err != nil {
				t.Fatalf("%s: %v", o.file, err)
			}
			if o.Kind == "" || o.APIVersion == "" {
				t.Fatalf("%s: no kind or apiVersion", o.file)
			}
			byKind[o.Kind] = append(byKind[o.Kind], o)
		}
	}
	return byKind
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func one(t *testing.T, m map[string][]*object, kind string) *object {
	t.Helper()
	if len(m[kind]) != 1 {
		t.Fatalf("want exactly one %s in %s, got %d", kind, istioDir, len(m[kind]))
	}
	return m[kind][0]
}

func portNumber(t *testing.T, p any, named map[string]int) int {
	t.Helper()
	switch v := p.(type) {
	case float64:
		return int(v)
	case string:
		if n, ok := named[v]; ok {
			return n
		}
		t.Fatalf("port %q names no container port", v)
	}
	t.Fatalf("port %v: want a number or a container port name", p)
	return 0
}

// TestIstioManifests checks that the mesh provider, the Service, the
// Deployment, the ConfigMap and the AuthorizationPolicy agree.
func TestIstioManifests(t *testing.T) {
	m := loadManifests(t)
	op := one(t, m, "IstioOperator")
	svc := one(t, m, "Service")
	dep := one(t, m, "Deployment")
	cm := one(t, m, "ConfigMap")
	ap := one(t, m, "AuthorizationPolicy")
	ns := one(t, m, "Namespace")

	// Mesh provider → Service.
	var prov *struct {
		Service       string `json:"service"`
		Port          int    `json:"port"`
		Timeout       string `json:"timeout"`
		FailOpen      *bool  `json:"failOpen"`
		StatusOnError string `json:"statusOnError"`
	}
	var provName string
	for _, p := range op.Spec.MeshConfig.ExtensionProviders {
		if p.EnvoyExtAuthzGrpc != nil {
			if prov != nil {
				t.Fatal("more than one envoyExtAuthzGrpc provider")
			}
			prov, provName = p.EnvoyExtAuthzGrpc, p.Name
		}
	}
	if prov == nil {
		t.Fatal("no envoyExtAuthzGrpc extension provider")
	}
	if want := svc.Metadata.Name + "." + svc.Metadata.Namespace + ".svc.cluster.local"; prov.Service != want {
		t.Errorf("provider service = %q, want %q (the Service)", prov.Service, want)
	}
	if prov.FailOpen == nil || *prov.FailOpen {
		t.Error("provider failOpen must be set to false")
	}
	if prov.Timeout == "" {
		t.Error("provider timeout must be set (Istio's default is 600s)")
	}
	if prov.StatusOnError != "503" {
		t.Errorf("provider statusOnError = %q, want \"503\" as in envoy.yaml", prov.StatusOnError)
	}

	// AuthorizationPolicy → provider.
	if ap.Spec.Action != "CUSTOM" {
		t.Errorf("AuthorizationPolicy action = %q, want CUSTOM", ap.Spec.Action)
	}
	if ap.Spec.Provider.Name != provName {
		t.Errorf("AuthorizationPolicy provider.name = %q, want the mesh provider %q", ap.Spec.Provider.Name, provName)
	}
	if len(ap.Spec.Rules) == 0 {
		t.Error("AuthorizationPolicy has no rules: a CUSTOM policy without rules checks nothing")
	}

	// Namespaces.
	for _, o := range []*object{svc, dep, cm} {
		if o.Metadata.Namespace != ns.Metadata.Name {
			t.Errorf("%s %s: namespace %q, want %q", o.Kind, o.Metadata.Name, o.Metadata.Namespace, ns.Metadata.Name)
		}
	}
	if sa := m["ServiceAccount"]; len(sa) != 1 || sa[0].Metadata.Namespace != ns.Metadata.Name {
		t.Error("want one ServiceAccount in the accessgate namespace")
	}

	// Deployment selector ↔ pod labels ↔ Service selector ↔ PDB selector.
	podLabels := dep.Spec.Template.Metadata.Labels
	subset := func(sel map[string]string) bool {
		for k, v := range sel {
			if podLabels[k] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	if !subset(dep.Spec.Selector.MatchLabels) {
		t.Errorf("Deployment selector %v does not match its pod labels %v", dep.Spec.Selector.MatchLabels, podLabels)
	}
	svcSel := map[string]string{}
	if s, ok := svc.raw["spec"].(map[string]any)["selector"].(map[string]any); ok {
		for k, v := range s {
			svcSel[k] = fmt.Sprint(v)
		}
	}
	if !subset(svcSel) {
		t.Errorf("Service selector %v does not match the pod labels %v", svcSel, podLabels)
	}
	for _, pdb := range m["PodDisruptionBudget"] {
		if !subset(pdb.Spec.Selector.MatchLabels) {
			t.Errorf("PodDisruptionBudget selector %v does not match the pod labels", pdb.Spec.Selector.MatchLabels)
		}
	}

	// Container.
	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	named := map[string]int{}
	for _, p := range c.Ports {
		named[p.Name] = p.ContainerPort
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	listenPort := func(name string) int {
		_, p, err := net.SplitHostPort(env[name])
		if err != nil {
			t.Fatalf("%s = %q: %v", name, env[name], err)
		}
		if h, _, _ := net.SplitHostPort(env[name]); h != "0.0.0.0" {
			t.Errorf("%s = %q: must listen on 0.0.0.0 in a pod", name, env[name])
		}
		n, _ := strconv.Atoi(p)
		return n
	}
	grpcPort, httpPort := listenPort("ACCESSGATE_GRPC_ADDR"), listenPort("ACCESSGATE_HTTP_ADDR")
	if named["grpc"] != grpcPort {
		t.Errorf("container port grpc = %d, ACCESSGATE_GRPC_ADDR listens on %d", named["grpc"], grpcPort)
	}
	if named["http"] != httpPort {
		t.Errorf("container port http = %d, ACCESSGATE_HTTP_ADDR listens on %d", named["http"], httpPort)
	}

	// Service ports: the provider's port reaches the gRPC listener.
	var provPortOK bool
	for _, p := range svc.Spec.Ports {
		target := p.Port
		if p.TargetPort != nil {
			target = portNumber(t, p.TargetPort, named)
		}
		if p.Port == prov.Port {
			provPortOK = target == grpcPort
			if !strings.HasPrefix(p.Name, "grpc") {
				t.Errorf("Service port %d is named %q: Istio needs a grpc name prefix", p.Port, p.Name)
			}
		}
	}
	if !provPortOK {
		t.Errorf("provider port %d is not a Service port targeting the gRPC listener %d", prov.Port, grpcPort)
	}

	// Probes.
	for _, pr := range []struct {
		name string
		p    *probe
		path string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if pr.p == nil || pr.p.HTTPGet == nil {
			t.Errorf("no %s httpGet probe", pr.name)
			continue
		}
		if pr.p.HTTPGet.Path != pr.path {
			t.Errorf("%s probe path = %q, want %q", pr.name, pr.p.HTTPGet.Path, pr.path)
		}
		if got := portNumber(t, pr.p.HTTPGet.Port, named); got != httpPort {
			t.Errorf("%s probe port = %d, want the HTTP listener %d", pr.name, got, httpPort)
		}
	}

	// Non-root.
	if pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot || pod.SecurityContext.RunAsUser == 0 {
		t.Error("the pod must run as non-root (runAsNonRoot: true, runAsUser != 0)")
	}
	if ape := c.SecurityContext.AllowPrivilegeEscalation; ape == nil || *ape || !c.SecurityContext.ReadOnlyRootFilesystem {
		t.Error("the container must forbid privilege escalation and mount its root read-only")
	}

	// Policy: ConfigMap → volume → folder mount → --config / ACCESSGATE_CONFIG.
	cfg := env["ACCESSGATE_CONFIG"]
	for i, a := range c.Args {
		if a == "--config" && i+1 < len(c.Args) {
			cfg = c.Args[i+1]
		} else if v, ok := strings.CutPrefix(a, "--config="); ok {
			cfg = v
		}
	}
	if cfg == "" {
		t.Fatal("the container names no policy file (--config or ACCESSGATE_CONFIG)")
	}
	var vol string
	for _, v := range pod.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == cm.Metadata.Name {
			vol = v.Name
		}
	}
	if vol == "" {
		t.Fatalf("no volume from ConfigMap %s", cm.Metadata.Name)
	}
	var mounted bool
	for _, vm := range c.VolumeMounts {
		if vm.Name != vol {
			continue
		}
		mounted = true
		if vm.SubPath != "" {
			t.Errorf("the policy ConfigMap is mounted with subPath %q: such mounts never see updates", vm.SubPath)
		}
		if path.Dir(cfg) != path.Clean(vm.MountPath) {
			t.Errorf("policy file %s is not in the ConfigMap folder %s", cfg, vm.MountPath)
		}
	}
	if !mounted {
		t.Fatalf("volume %s is not mounted", vol)
	}
	policy, ok := cm.Data[path.Base(cfg)]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %s", cm.Metadata.Name, path.Base(cfg))
	}
	if _, err := policies.Parse(cfg, []byte(policy)); err != nil {
		t.Errorf("the ConfigMap's policy file does not validate:\n%v", err)
	}

	// kustomization lists every manifest but the Istio install overlay.
	var k struct {
		Resources []string `json:"resources"`
	}
	readYAML(t, filepath.Join(istioDir, "kustomization.yaml"), &k)
	for _, list := range m {
		for _, o := range list {
			f, _, _ := strings.Cut(o.file, "#")
			if o.Kind == "IstioOperator" || o.Kind == "Kustomization" {
				continue
			}
			if !contains(k.Resources, f) {
				t.Errorf("kustomization.yaml does not list %s (%s)", f, o.Kind)
			}
		}
	}
}

// TestComposePolicyValidates runs the policy loader on the compose policy.
func TestComposePolicyValidates(t *testing.T) {
	data, err := os.ReadFile(composePolicy)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := policies.Parse(composePolicy, data); err != nil {
		t.Errorf("%s:\n%v", composePolicy, err)
	}
}

// TestIstioPeerAuthentication: accessgate's sidecar takes only mesh mTLS,
// and the PeerAuthentication selects the Deployment's pods.
func TestIstioPeerAuthentication(t *testing.T) {
	m := loadManifests(t)
	pa := one(t, m, "PeerAuthentication")
	dep := one(t, m, "Deployment")
	if pa.APIVersion != "security.istio.io/v1" {
		t.Errorf("PeerAuthentication apiVersion = %q, want security.istio.io/v1", pa.APIVersion)
	}
	if pa.Metadata.Namespace != dep.Metadata.Namespace {
		t.Errorf("PeerAuthentication namespace = %q, want the Deployment's %q", pa.Metadata.Namespace, dep.Metadata.Namespace)
	}
	if pa.Spec.MTLS.Mode != "STRICT" {
		t.Errorf("PeerAuthentication mtls.mode = %q, want STRICT", pa.Spec.MTLS.Mode)
	}
	sel, pod := pa.Spec.Selector.MatchLabels, dep.Spec.Template.Metadata.Labels
	if len(sel) == 0 {
		t.Fatal("PeerAuthentication has no selector: it would apply to the whole namespace")
	}
	for k, v := range sel {
		if pod[k] != v {
			t.Errorf("PeerAuthentication selector %v does not match the Deployment's pod labels %v", sel, pod)
			break
		}
	}
}
