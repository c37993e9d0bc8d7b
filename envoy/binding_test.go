package envoy

import (
	"context"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/accessgate/accessgate/authz"
	"github.com/accessgate/accessgate/policies"
)

func withBinding(cr *authv3.CheckRequest, ext map[string]string) *authv3.CheckRequest {
	cr.Attributes.ContextExtensions = ext
	return cr
}

func TestRequestFromBinding(t *testing.T) {
	tests := []struct {
		name      string
		give      *authv3.CheckRequest
		wantApp   string
		wantBound bool
	}{
		{"none", checkRequest("GET", "h", "/", nil, ""), "", false},
		{"bound", withBinding(checkRequest("GET", "h", "/", nil, ""), map[string]string{"accessgate-application": "admin"}), "admin", true},
		{"present but empty", withBinding(checkRequest("GET", "h", "/", nil, ""), map[string]string{"accessgate-application": ""}), "", true},
		{"other extensions only", withBinding(checkRequest("GET", "h", "/", nil, ""), map[string]string{"virtual_host": "x"}), "", false},
		// Only the gateway binds: a client's header is an ordinary header.
		{"request header", checkRequest("GET", "h", "/", map[string]string{"x-accessgate-application": "admin"}, ""), "", false},
	}
	for _, tt := range tests {
		r, _ := requestFrom(tt.give)
		if r.Application != tt.wantApp || r.ApplicationBound != tt.wantBound {
			t.Errorf("%s: Application %q bound %v, want %q %v", tt.name, r.Application, r.ApplicationBound, tt.wantApp, tt.wantBound)
		}
	}
}

const bindingPolicy = `default_action: allow
issuers:
  - name: team
    issuer: https://team.example.com
    jwks_url: https://team.example.com/certs
    login_url: https://team.example.com/login?r={redirect}
applications:
  - name: public
    domains: [app.example.com]
    issuer: team
    audience: aud
    policies: [{name: open, action: bypass, include: [{everyone: true}]}]
  - name: admin
    domains: [app.example.com/admin]
    issuer: team
    audience: aud
    policies: [{name: staff, action: allow, include: [{email_domain: [example.com]}]}]
`

// TestCheckBinding runs the real engine behind the real gRPC server: the
// route's context extension chooses the application, an unknown name is
// refused and warned about once a minute, and a header is no binding.
func TestCheckBinding(t *testing.T) {
	set, err := policies.Parse("binding.yaml", []byte(bindingPolicy))
	if err != nil {
		t.Fatal(err)
	}
	e := authz.New(nil)
	e.Swap(set)
	core, logs := observer.New(zapcore.DebugLevel)
	client := startServer(t, NewServer(e, zap.New(core)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bind := func(name string) map[string]string { return map[string]string{ContextExtensionApplication: name} }
	tests := []struct {
		name     string
		give     *authv3.CheckRequest
		wantHTTP int32 // 0 for a forward
		wantBody string
	}{
		{"route bound to public", withBinding(checkRequest("GET", "app.example.com", "/admin/users", nil, "10.0.0.1"), bind("public")), 0, ""},
		{"route bound to admin", withBinding(checkRequest("GET", "app.example.com", "/users", map[string]string{"accept": "application/json"}, "10.0.0.1"), bind("admin")), 401, `"reason":"token_missing"`},
		{"unknown name", withBinding(checkRequest("GET", "app.example.com", "/", nil, "10.0.0.1"), bind("ghost")), 403, `"reason":"no_application"`},
		{"unknown name again", withBinding(checkRequest("GET", "app.example.com", "/", nil, "10.0.0.1"), bind("ghost")), 403, `"reason":"no_application"`},
		{"host not covered", withBinding(checkRequest("GET", "other.example.com", "/", nil, "10.0.0.1"), bind("public")), 403, `"reason":"application_mismatch"`},
		{"header is no binding", checkRequest("GET", "app.example.com", "/admin/users", map[string]string{"x-accessgate-application": "public", "accept": "application/json"}, "10.0.0.1"), 401, `"reason":"token_missing"`},
	}
	for _, tt := range tests {
		resp, err := client.Check(ctx, tt.give)
		if err != nil {
			t.Fatalf("%s: Check: %v", tt.name, err)
		}
		if got := int32(resp.GetDeniedResponse().GetStatus().GetCode()); got != tt.wantHTTP {
			t.Errorf("%s: http status = %d, want %d", tt.name, got, tt.wantHTTP)
		}
		if body := resp.GetDeniedResponse().GetBody(); tt.wantBody != "" && !strings.Contains(body, tt.wantBody) {
			t.Errorf("%s: body %q, want %s", tt.name, body, tt.wantBody)
		}
	}
	warnings := logs.FilterMessageSnippet("unknown application").All()
	if len(warnings) != 1 || warnings[0].ContextMap()["application"] != "ghost" || warnings[0].Level != zapcore.WarnLevel {
		t.Errorf("unknown-binding warnings = %v, want exactly one for ghost", warnings)
	}
}
