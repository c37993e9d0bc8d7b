package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

const (
	chart     = root + "/deploy/helm/accessgate"
	release   = "accessgate"
	namespace = "accessgate"
)

// valueSets are the chart's defaults ("") and every ci/ value set.
func valueSets(t *testing.T) []string {
	t.Helper()
	sets, err := filepath.Glob(filepath.Join(chart, "ci", "*-values.yaml"))
	if err != nil || len(sets) < 5 {
		t.Fatalf("want the five ci/ value sets, found %v (%v)", sets, err)
	}
	return append([]string{""}, sets...)
}

func setName(set string) string {
	if set == "" {
		return "defaults"
	}
	return strings.TrimSuffix(filepath.Base(set), "-values.yaml")
}

// render runs helm template with the value file (none: defaults) and extra
// --set arguments.
func render(t *testing.T, set string, extra ...string) ([]doc, error) {
	t.Helper()
	args := []string{"template", release, chart, "--namespace", namespace}
	if set != "" {
		args = append(args, "-f", set)
	}
	out, err := run(helm(t), append(args, extra...)...)
	if err != nil {
		return nil, err
	}
	return splitDocs(setName(set), out), nil
}

func TestHelmLint(t *testing.T) {
	h := helm(t)
	for _, set := range valueSets(t) {
		t.Run(setName(set), func(t *testing.T) {
			args := []string{"lint", "--strict", chart, "--namespace", namespace}
			if set != "" {
				args = append(args, "-f", set)
			}
			if out, err := run(h, args...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// TestHelmTemplate renders every value set and validates every manifest
// strictly, then checks that the objects agree with each other.
func TestHelmTemplate(t *testing.T) {
	for _, set := range valueSets(t) {
		t.Run(setName(set), func(t *testing.T) {
			docs, err := render(t, set)
			if err != nil {
				t.Fatal(err)
			}
			mustValidate(t, docs)
			objs := index(t, docs)
			checkSecurityDefaults(t, objs)
			checkWiring(t, objs)
		})
	}
}

// objects are the rendered documents by kind, decoded loosely (their
// strictness is validate's job).
type objects map[string][]map[string]any

func index(t *testing.T, docs []doc) objects {
	t.Helper()
	o := objects{}
	for _, d := range docs {
		var m map[string]any
		if err := yaml.Unmarshal(d.data, &m); err != nil {
			t.Fatalf("%s: %v", d.name, err)
		}
		k, _ := m["kind"].(string)
		o[k] = append(o[k], m)
	}
	return o
}

// one decodes the single object of kind into v.
func (o objects) one(t *testing.T, kind string, v any) {
	t.Helper()
	if len(o[kind]) != 1 {
		t.Fatalf("want one %s, got %d", kind, len(o[kind]))
	}
	decodeInto(t, o[kind][0], v)
}

func decodeInto(t *testing.T, m map[string]any, v any) {
	t.Helper()
	js, err := yaml.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(js, v); err != nil {
		t.Fatal(err)
	}
}

func env(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

// checkSecurityDefaults asserts the hardening every value set keeps.
func checkSecurityDefaults(t *testing.T, o objects) {
	t.Helper()
	var dep appsv1.Deployment
	o.one(t, "Deployment", &dep)
	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	psc, sc := pod.SecurityContext, c.SecurityContext
	switch {
	case psc == nil || sc == nil:
		t.Fatal("no pod or container securityContext")
	case psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0:
		t.Error("the pod must run as a non-root user (runAsNonRoot, runAsUser != 0)")
	case psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Error("the pod's seccomp profile must be RuntimeDefault")
	}
	switch {
	case sc == nil:
	case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
		t.Error("container runAsNonRoot must be true")
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("container readOnlyRootFilesystem must be true")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("container allowPrivilegeEscalation must be false")
	case sc.Privileged != nil && *sc.Privileged:
		t.Error("container must not be privileged")
	case sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) != 0:
		t.Errorf("container capabilities must drop ALL and add none, got %+v", sc.Capabilities)
	case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Error("container seccomp profile must be RuntimeDefault")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the pod must not mount a service account token (accessgate never calls the API)")
	}

	// At least two replicas, from the Deployment or the autoscaler.
	min := int32(0)
	if dep.Spec.Replicas != nil {
		min = *dep.Spec.Replicas
	} else if hpas := o["HorizontalPodAutoscaler"]; len(hpas) == 1 {
		if v, ok := hpas[0]["spec"].(map[string]any)["minReplicas"].(float64); ok {
			min = int32(v)
		}
	}
	if min < 2 {
		t.Errorf("at least two replicas, got %d", min)
	}
	if s := dep.Spec.Strategy.RollingUpdate; s == nil || s.MaxUnavailable == nil || s.MaxUnavailable.IntValue() != 0 {
		t.Error("rolling updates must keep every replica until its successor is ready (maxUnavailable 0)")
	}

	var pdb policyv1.PodDisruptionBudget
	o.one(t, "PodDisruptionBudget", &pdb)
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget minAvailable = %v, want 1", pdb.Spec.MinAvailable)
	}
	if !selects(pdb.Spec.Selector.MatchLabels, dep.Spec.Template.Labels) {
		t.Errorf("PodDisruptionBudget selector %v does not select the pods %v", pdb.Spec.Selector.MatchLabels, dep.Spec.Template.Labels)
	}

	// Probes on /healthz and /readyz of the HTTP listener.
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "http" {
			t.Errorf("%s probe must GET %s on the http port, got %+v", p.name, p.path, p.probe)
		}
	}

	// Drain fits in the grace period.
	e := env(c)
	drain, err1 := time.ParseDuration(e["ACCESSGATE_DRAIN_DELAY"])
	shutdown, err2 := time.ParseDuration(e["ACCESSGATE_SHUTDOWN_TIMEOUT"])
	if err1 != nil || err2 != nil {
		t.Fatalf("ACCESSGATE_DRAIN_DELAY %q, ACCESSGATE_SHUTDOWN_TIMEOUT %q: %v %v", e["ACCESSGATE_DRAIN_DELAY"], e["ACCESSGATE_SHUTDOWN_TIMEOUT"], err1, err2)
	}
	if g := pod.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= drain+shutdown {
		t.Errorf("terminationGracePeriodSeconds %v must exceed drain %v + shutdown %v", g, drain, shutdown)
	}

	// Policy and keys: folders, never subPath (the kubelet's ..data swap
	// never reaches a subPath mount), read-only.
	for _, vm := range c.VolumeMounts {
		if vm.SubPath != "" || vm.SubPathExpr != "" {
			t.Errorf("volume %s is mounted with a subPath: it would never see updates", vm.Name)
		}
		if !vm.ReadOnly {
			t.Errorf("volume %s must be mounted read-only", vm.Name)
		}
	}
}

func selects(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

// checkWiring asserts that the objects refer to each other correctly.
func checkWiring(t *testing.T, o objects) {
	t.Helper()
	var dep appsv1.Deployment
	o.one(t, "Deployment", &dep)
	c := dep.Spec.Template.Spec.Containers[0]
	e := env(c)
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	listen := map[string]string{"grpc": "ACCESSGATE_GRPC_ADDR", "http": "ACCESSGATE_HTTP_ADDR", "auth": "ACCESSGATE_AUTH_ADDR", "login": "ACCESSGATE_LOGIN_ADDR"}
	for name, v := range listen {
		addr, set := e[v]
		port, open := ports[name]
		if set != open {
			t.Errorf("%s set %v but container port %s open %v", v, set, name, open)
			continue
		}
		if set && !strings.HasSuffix(addr, fmt.Sprintf(":%d", port)) {
			t.Errorf("%s = %q, container port %s = %d", v, addr, name, port)
		}
	}

	// The policy file is in the ConfigMap folder, under a key it has.
	cfg := e["ACCESSGATE_CONFIG"]
	var mount *corev1.VolumeMount
	for i, vm := range c.VolumeMounts {
		if vm.Name == "policy" {
			mount = &c.VolumeMounts[i]
		}
	}
	if mount == nil || filepath.Dir(cfg) != mount.MountPath {
		t.Fatalf("ACCESSGATE_CONFIG %q is not in the policy volume's folder (%+v)", cfg, mount)
	}
	var cmName string
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if v.Name == "policy" && v.ConfigMap != nil {
			cmName = v.ConfigMap.Name
		}
	}
	var cm *corev1.ConfigMap
	for _, m := range o["ConfigMap"] {
		var c corev1.ConfigMap
		decodeInto(t, m, &c)
		if c.Name == cmName {
			cm = &c
		}
	}
	if cm == nil || cm.Data[filepath.Base(cfg)] == "" {
		t.Errorf("the policy volume names ConfigMap %q; rendered %+v, want it with key %s", cmName, cm, filepath.Base(cfg))
	}
	// The dashboard ConfigMap, when rendered, holds the shipped dashboard.
	for _, m := range o["ConfigMap"] {
		if strings.HasSuffix(meta(m, "name"), "-dashboard") {
			var c corev1.ConfigMap
			decodeInto(t, m, &c)
			shipped, err := os.ReadFile(filepath.Join(chart, "dashboards", "accessgate.json"))
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(c.Data["accessgate.json"]) != strings.TrimSpace(string(shipped)) || c.Labels["grafana_dashboard"] != "1" {
				t.Errorf("dashboard ConfigMap %s does not carry the shipped dashboard with the sidecar label", c.Name)
			}
		}
	}

	// Every Service selects the pods and targets open container ports.
	for _, m := range o["Service"] {
		var s corev1.Service
		decodeInto(t, m, &s)
		if !selects(s.Spec.Selector, dep.Spec.Template.Labels) {
			t.Errorf("Service %s selector %v does not select the pods", s.Name, s.Spec.Selector)
		}
		for _, p := range s.Spec.Ports {
			if _, ok := ports[p.TargetPort.String()]; !ok {
				t.Errorf("Service %s port %s targets %q, no container port", s.Name, p.Name, p.TargetPort.String())
			}
		}
		if _, ok := e["ACCESSGATE_LOGIN_ADDR"]; strings.HasSuffix(s.Name, "-login") && !ok {
			t.Errorf("Service %s without the login listener", s.Name)
		}
	}

	// NetworkPolicy: only namespace-selected peers, and only to named
	// container ports; the gateway rule never opens the metrics port.
	for _, m := range o["NetworkPolicy"] {
		var np networkingv1.NetworkPolicy
		decodeInto(t, m, &np)
		if !selects(np.Spec.PodSelector.MatchLabels, dep.Spec.Template.Labels) {
			t.Errorf("NetworkPolicy selects %v, not the pods", np.Spec.PodSelector.MatchLabels)
		}
		for i, r := range np.Spec.Ingress {
			if len(r.From) == 0 || len(r.Ports) == 0 {
				t.Errorf("NetworkPolicy rule %d admits every source or port", i)
			}
			for _, f := range r.From {
				if f.NamespaceSelector == nil || f.IPBlock != nil {
					t.Errorf("NetworkPolicy rule %d: peer %+v is not a namespace", i, f)
				}
			}
			for _, p := range r.Ports {
				if _, ok := ports[p.Port.String()]; !ok {
					t.Errorf("NetworkPolicy rule %d opens %s, no container port", i, p.Port.String())
				}
			}
		}
		if r := np.Spec.Ingress[0]; len(r.Ports) > 0 {
			for _, p := range r.Ports {
				if p.Port.String() == "http" {
					t.Error("the gateway rule must not open the metrics port")
				}
			}
		}
	}

	// SecurityPolicies name an application, fail closed, and point at the
	// Service; those in other namespaces are allowed by a ReferenceGrant.
	for _, sp := range o["SecurityPolicy"] {
		ext := sp["spec"].(map[string]any)["extAuth"].(map[string]any)
		if ext["failOpen"] != false {
			t.Errorf("SecurityPolicy %v: failOpen must be false", name(sp))
		}
		ce, _ := ext["contextExtensions"].([]any)
		if len(ce) != 1 || ce[0].(map[string]any)["name"] != "accessgate-application" || ce[0].(map[string]any)["value"] == "" {
			t.Errorf("SecurityPolicy %v: contextExtensions %v must name the application", name(sp), ce)
		}
		if ns := meta(sp, "namespace"); ns != namespace && !granted(o, "gateway.envoyproxy.io", "SecurityPolicy", ns) {
			t.Errorf("SecurityPolicy in %s references the Service in %s without a ReferenceGrant", ns, namespace)
		}
	}
	for _, ap := range o["AuthorizationPolicy"] {
		spec := ap["spec"].(map[string]any)
		_, tr := spec["targetRefs"]
		_, sel := spec["selector"]
		if spec["action"] != "CUSTOM" || tr == sel {
			t.Errorf("AuthorizationPolicy %v: want action CUSTOM and exactly one of targetRefs or selector", name(ap))
		}
	}
}

func meta(m map[string]any, field string) string {
	s, _ := m["metadata"].(map[string]any)[field].(string)
	return s
}

func name(m map[string]any) string { return meta(m, "namespace") + "/" + meta(m, "name") }

func granted(o objects, group, kind, ns string) bool {
	for _, rg := range o["ReferenceGrant"] {
		for _, f := range rg["spec"].(map[string]any)["from"].([]any) {
			f := f.(map[string]any)
			if f["group"] == group && f["kind"] == kind && f["namespace"] == ns {
				return true
			}
		}
	}
	return false
}

// TestHelmRefuses: values that would weaken the gate make the render fail
// with a message that names the problem. values.schema.json catches most
// (and every misspelt key); the template's own checks catch them again
// when the schema is skipped (--skip-schema-validation), and catch the
// rules a schema cannot state.
func TestHelmRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		set    []string
		schema string // the schema's message; "" when only the template refuses
		tmpl   string // the template's message; "" when only the schema refuses
	}{
		{"one replica", []string{"--set", "replicaCount=1"}, "/replicaCount", "replicaCount must be at least 2"},
		{"autoscaling to one", []string{"--set", "autoscaling.enabled=true", "--set", "autoscaling.minReplicas=1"}, "/autoscaling/minReplicas", "minReplicas must be at least 2"},
		{"grace shorter than drain", []string{"--set", "terminationGracePeriodSeconds=20"}, "", "terminationGracePeriodSeconds must exceed"},
		{"no policy", []string{"--set", "policy.content="}, "", "set policy.content or policy.existingConfigMap"},
		{"network policy without gateway", []string{"--set", "networkPolicy.enabled=true"}, "", "needs networkPolicy.gatewayNamespaces"},
		{"client CA without secret", []string{"--set", "tls.clientCA=true"}, "", "tls.clientCA needs tls.secretName"},
		{"authorization policy without target", []string{"--set", "istio.authorizationPolicies[0].name=x"}, "", "set exactly one of targetRefs"},
		{"authorization policy with both", []string{"--set", "istio.authorizationPolicies[0].name=x",
			"--set", "istio.authorizationPolicies[0].selector.matchLabels.app=x",
			"--set", "istio.authorizationPolicies[0].targetRefs[0].kind=Gateway",
			"--set", "istio.authorizationPolicies[0].targetRefs[0].name=w"}, "", "set exactly one of targetRefs"},
		{"security policy without application", []string{"--set", "envoyGateway.securityPolicies[0].name=x",
			"--set", "envoyGateway.securityPolicies[0].targetRefs[0].kind=HTTPRoute",
			"--set", "envoyGateway.securityPolicies[0].targetRefs[0].name=r"}, "", "application is required"},
		{"key folder not a DNS label", []string{"--set", "keys.secrets[0].name=../etc"}, "/keys/secrets/0/name", "must be a DNS label"},
		// A misspelt switch would otherwise be ignored, and the
		// NetworkPolicy silently never rendered.
		{"misspelt key", []string{"--set", "networkPolicy.enable=true", "--set", "networkPolicy.gatewayNamespaces[0]=gw"}, "additional properties 'enable' not allowed", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.schema
			if want == "" {
				want = tc.tmpl
			}
			_, err := render(t, "", tc.set...)
			if err == nil {
				t.Fatalf("rendered with %v; want a refusal", tc.set)
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %v; want it to say %q", err, want)
			}
			if tc.tmpl == "" {
				return
			}
			_, err = render(t, "", append(tc.set, "--skip-schema-validation")...)
			if err == nil || !strings.Contains(err.Error(), tc.tmpl) {
				t.Errorf("without the schema: error %v; want it to say %q", err, tc.tmpl)
			}
		})
	}
}

// TestLoginFollowsPolicy: the sign-in listener, its Service and port come
// with a `login` section in the policy, and not without one.
func TestLoginFollowsPolicy(t *testing.T) {
	for _, tc := range []struct {
		set   []string
		login bool
	}{
		{nil, false},
		{[]string{"--set-string", "policy.content=default_action: deny\nlogin: {team_domain: https://auth.example.com}\n"}, true},
		{[]string{"--set", "policy.existingConfigMap=mine", "--set", "login.enabled=true"}, true},
		{[]string{"--set", "policy.existingConfigMap=mine"}, false},
	} {
		docs, err := render(t, "", tc.set...)
		if err != nil {
			t.Fatal(err)
		}
		o := index(t, docs)
		var dep appsv1.Deployment
		o.one(t, "Deployment", &dep)
		_, listens := env(dep.Spec.Template.Spec.Containers[0])["ACCESSGATE_LOGIN_ADDR"]
		var svc bool
		for _, s := range o["Service"] {
			svc = svc || strings.HasSuffix(meta(s, "name"), "-login")
		}
		if listens != tc.login || svc != tc.login {
			t.Errorf("%v: login listener %v, Service %v; want %v", tc.set, listens, svc, tc.login)
		}
		if len(o["ConfigMap"]) != map[bool]int{true: 0, false: 1}[strings.Contains(fmt.Sprint(tc.set), "existingConfigMap")] {
			t.Errorf("%v: %d policy ConfigMaps rendered", tc.set, len(o["ConfigMap"]))
		}
	}
}
