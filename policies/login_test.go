package policies

import (
	"strings"
	"testing"
)

func TestLoginTemplateRender(t *testing.T) {
	tests := []struct {
		name                string
		tmpl                string
		host, aud, redirect string
		want                string
	}{
		{
			name: "contract example",
			tmpl: "https://team.example.com/cdn-cgi/access/login/{host}?kid={aud}&redirect_url={redirect}",
			host: "app.example.com", aud: "32ea", redirect: "https://app.example.com:8443/a/b?x=1&y=2",
			want: "https://team.example.com/cdn-cgi/access/login/app.example.com?kid=32ea&redirect_url=https%3A%2F%2Fapp.example.com%3A8443%2Fa%2Fb%3Fx%3D1%26y%3D2",
		},
		{
			name: "no placeholders",
			tmpl: "https://login.example.com/",
			host: "h", aud: "a", redirect: "r",
			want: "https://login.example.com/",
		},
		{
			name: "placeholder twice",
			tmpl: "https://l.example.com/?a={host}&b={host}",
			host: "x y", aud: "", redirect: "",
			want: "https://l.example.com/?a=x+y&b=x+y",
		},
		{
			name:     "placeholder last",
			tmpl:     "https://l.example.com/?r={redirect}",
			redirect: "/#frag",
			want:     "https://l.example.com/?r=%2F%23frag",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lt, err := parseLoginTemplate(tt.tmpl)
			if err != nil {
				t.Fatalf("parseLoginTemplate(%q): %v", tt.tmpl, err)
			}
			if got := lt.Render(tt.host, tt.aud, tt.redirect); got != tt.want {
				t.Errorf("Render(%q, %q, %q) = %q, want %q", tt.host, tt.aud, tt.redirect, got, tt.want)
			}
		})
	}
}

func TestLoginTemplateErrors(t *testing.T) {
	tests := []struct {
		give string
		want string
	}{
		{"https://l.example.com/?r={redirect_url}", "unknown placeholder {redirect_url}"},
		{"https://l.example.com/?r={}", "unknown placeholder {}"},
		{"https://l.example.com/?r={redirect", "unbalanced { at offset 25"},
		{"https://l.example.com/?r=redirect}", "unbalanced } at offset 33"},
		{"https://l.example.com/?r={{redirect}}", "unbalanced { at offset 25"},
		{"/cdn-cgi/access/login", "absolute http or https URL"},
		{"ftp://l.example.com/{host}", "absolute http or https URL"},
	}
	for _, tt := range tests {
		_, err := parseLoginTemplate(tt.give)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseLoginTemplate(%q) error = %v, want %q", tt.give, err, tt.want)
		}
	}
}
