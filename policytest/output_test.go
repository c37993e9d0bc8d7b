package policytest

import (
	"encoding/json"
	"testing"

	"github.com/accessgate/accessgate/authz"
)

// TestExplain: the fields check prints, headers as objects (a repeated
// name joined with ", "), empty lists as [] and {}, never null.
func TestExplain(t *testing.T) {
	d := authz.Decision{
		Verdict: authz.Deny, Status: 403, Reason: authz.ReasonBlocked, Application: "app", Policy: "p", Rule: "include[0].email",
		ResponseHeaders: []authz.Header{{Key: "vary", Value: "Origin"}, {Key: "vary", Value: "Accept", Append: true}, {Key: "content-type", Value: "application/json"}},
		Body:            `{"error":"forbidden","reason":"blocked"}`,
	}
	var got map[string]any
	if err := json.Unmarshal(Explain(&d).JSON(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"application": "app", "policy": "p", "rule": "include[0].email", "reason": "blocked", "status": float64(403),
		"headers": map[string]any{}, "headers_to_remove": []any{},
		"response_headers": map[string]any{"vary": "Origin, Accept", "content-type": "application/json"},
		"body":             `{"error":"forbidden","reason":"blocked"}`,
	}
	if g, w := jsonText(got), jsonText(want); g != w {
		t.Errorf("Explain = %s, want %s", g, w)
	}
}

func TestRequestAuthz(t *testing.T) {
	tests := []struct {
		name    string
		give    Request
		want    authz.Request
		wantErr bool
	}{
		{name: "defaults", give: Request{Headers: map[string]string{"Host": "A.example.com"}},
			want: authz.Request{Method: "GET", Scheme: "https", Host: "A.example.com", Path: "/"}},
		{name: "authority header", give: Request{Headers: map[string]string{":authority": "b.example.com"}, SourceIP: "::ffff:192.0.2.1"},
			want: authz.Request{Method: "GET", Scheme: "https", Host: "b.example.com", Path: "/"}},
		{name: "bad source_ip", give: Request{SourceIP: "nope"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.give.Authz()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Authz: err = %v", err)
			}
			if err != nil {
				return
			}
			if got.Method != tt.want.Method || got.Scheme != tt.want.Scheme || got.Host != tt.want.Host || got.Path != tt.want.Path {
				t.Errorf("Authz = %+v, want %+v", got, tt.want)
			}
			if tt.give.SourceIP != "" && got.SourceIP.String() != "192.0.2.1" {
				t.Errorf("SourceIP = %v, want the unmapped IPv4 address", got.SourceIP)
			}
		})
	}
}
