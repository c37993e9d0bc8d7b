package test

import (
	"path/filepath"
	"testing"
)

// TestIstioPeerCertificate: the shipped Istio manifests make the gateway's
// ext_authz filter send the client certificate (include_peer_certificate),
// which Istio's extension provider cannot set, on the same gateway the
// CUSTOM AuthorizationPolicy selects.
func TestIstioPeerCertificate(t *testing.T) {
	var ef struct {
		Kind string `json:"kind"`
		Spec struct {
			WorkloadSelector struct {
				Labels map[string]string `json:"labels"`
			} `json:"workloadSelector"`
			ConfigPatches []struct {
				ApplyTo string `json:"applyTo"`
				Match   struct {
					Listener struct {
						FilterChain struct {
							Filter struct {
								SubFilter struct {
									Name string `json:"name"`
								} `json:"subFilter"`
							} `json:"filter"`
						} `json:"filterChain"`
					} `json:"listener"`
				} `json:"match"`
				Patch struct {
					Operation string `json:"operation"`
					Value     struct {
						TypedConfig struct {
							Type                   string `json:"@type"`
							IncludePeerCertificate bool   `json:"include_peer_certificate"`
						} `json:"typed_config"`
					} `json:"value"`
				} `json:"patch"`
			} `json:"configPatches"`
		} `json:"spec"`
	}
	readYAML(t, filepath.Join(istioDir, "peer-certificate.yaml"), &ef)
	var ap struct {
		Spec struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
		} `json:"spec"`
	}
	readYAML(t, filepath.Join(istioDir, "authorization-policy.yaml"), &ap)

	if ef.Kind != "EnvoyFilter" || len(ef.Spec.ConfigPatches) != 1 {
		t.Fatalf("peer-certificate.yaml: kind %q with %d patches, want one EnvoyFilter patch", ef.Kind, len(ef.Spec.ConfigPatches))
	}
	p := ef.Spec.ConfigPatches[0]
	if p.ApplyTo != "HTTP_FILTER" || p.Patch.Operation != "MERGE" ||
		p.Match.Listener.FilterChain.Filter.SubFilter.Name != "envoy.filters.http.ext_authz" {
		t.Errorf("patch %s %s on %q, want a MERGE into envoy.filters.http.ext_authz", p.ApplyTo, p.Patch.Operation, p.Match.Listener.FilterChain.Filter.SubFilter.Name)
	}
	if tc := p.Patch.Value.TypedConfig; !tc.IncludePeerCertificate || tc.Type != "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz" {
		t.Errorf("typed_config = %+v, want ExtAuthz with include_peer_certificate: true", tc)
	}
	for k, v := range ap.Spec.Selector.MatchLabels {
		if ef.Spec.WorkloadSelector.Labels[k] != v {
			t.Errorf("EnvoyFilter selects %v, the AuthorizationPolicy %v: want the same gateway", ef.Spec.WorkloadSelector.Labels, ap.Spec.Selector.MatchLabels)
		}
	}
}
