package policies

import (
	"fmt"
	"testing"
)

func TestLookup(t *testing.T) {
	set := mustParse(t, appsFile(
		[]string{"root", "example.com"},
		[]string{"exact", "app.example.com"},
		[]string{"wild", "*.app.example.com"},
		[]string{"v1", "api.example.com/v1"},
		[]string{"v1-admin", "api.example.com/v1/admin"},
		[]string{"api", "api.example.com"},
		[]string{"wild-v2", "*.example.com/v2"},
		[]string{"only-path", "paths.example.com/docs/"},
		[]string{"mixed-case", "MiXeD.Example.ORG"},
	))
	tests := []struct {
		name       string
		give, path string
		want       string // "" for no application
	}{
		{"exact host", "app.example.com", "/", "exact"},
		{"exact host any path", "app.example.com", "/a/b", "exact"},
		{"wildcard one label", "a.app.example.com", "/", "wild"},
		{"wildcard not two labels", "a.b.app.example.com", "/", ""},
		{"wildcard not the bare host", "app.example.com", "/", "exact"},
		{"wildcard needs a label", ".app.example.com", "/", ""},
		{"path prefix itself", "api.example.com", "/v1", "v1"},
		{"path prefix child", "api.example.com", "/v1/users", "v1"},
		{"path prefix trailing slash", "api.example.com", "/v1/", "v1"},
		{"path segment boundary", "api.example.com", "/v10", "api"},
		{"longest path wins", "api.example.com", "/v1/admin/x", "v1-admin"},
		{"longest path boundary", "api.example.com", "/v1/administrator", "v1"},
		{"host root fallback", "api.example.com", "/v2", "api"},
		{"exact host before wildcard", "api.example.com", "/v2", "api"},
		{"wildcard with path", "www.example.com", "/v2/x", "wild-v2"},
		{"wildcard path miss", "www.example.com", "/v3", ""},
		{"exact miss falls to wildcard", "paths.example.com", "/docs/a", "only-path"},
		{"exact path miss, wildcard path hit", "paths.example.com", "/v2", "wild-v2"},
		{"exact path miss, nothing else", "paths.example.com", "/other", ""},
		{"bare domain", "example.com", "/anything", "root"},
		{"unknown host", "other.org", "/", ""},
		{"config host lower-cased", "mixed.example.org", "/", "mixed-case"},
		{"empty host", "", "/", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if a := set.Lookup(tt.give, tt.path); a != nil {
				got = a.Name
			}
			if got != tt.want {
				t.Errorf("Lookup(%q, %q) = %q, want %q", tt.give, tt.path, got, tt.want)
			}
		})
	}
}

// TestLookupManyPaths covers the map walk used once a host has more than
// manyPaths prefixes.
func TestLookupManyPaths(t *testing.T) {
	apps := [][]string{{"root", "many.example.com"}}
	for i := range manyPaths + 4 {
		apps = append(apps, []string{fmt.Sprintf("p%d", i), fmt.Sprintf("many.example.com/p%d", i)})
	}
	apps = append(apps, []string{"deep", "many.example.com/p1/deep"})
	set := mustParse(t, appsFile(apps...))
	tests := []struct {
		give string
		want string
	}{
		{"/p1", "p1"},
		{"/p1/", "p1"},
		{"/p1/x/y", "p1"},
		{"/p1/deep", "deep"},
		{"/p1/deep/er", "deep"},
		{"/p1/deeper", "p1"},
		{"/p10", "p10"},
		{"/p100", "root"},
		{"/", "root"},
		{"", "root"},
	}
	for _, tt := range tests {
		got := ""
		if a := set.Lookup("many.example.com", tt.give); a != nil {
			got = a.Name
		}
		if got != tt.want {
			t.Errorf("Lookup(many.example.com, %q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

// TestLookupLetterCase: the application is chosen ASCII case-insensitively,
// unless it has case_sensitive_paths, in the prefix walk and in the map walk
// alike.
func TestLookupLetterCase(t *testing.T) {
	apps := [][]string{
		{"root", "api.example.com"},
		{"v1", "api.example.com/v1"},
		{"exact", "api.example.com/Exact"},
		{"admin", "api.example.com/v1/admin"},
	}
	for i := range manyPaths + 2 {
		// A second host with many prefixes, so its lookups walk the map.
		apps = append(apps, []string{fmt.Sprintf("m%d", i), fmt.Sprintf("many.example.com/m%d", i)})
	}
	apps = append(apps, []string{"many-root", "many.example.com"},
		[]string{"many-exact", "many.example.com/Exact"})
	set := mustParse(t, appsFile(apps...))
	for _, a := range set.Applications {
		if a.Name == "exact" || a.Name == "many-exact" {
			a.CaseSensitivePaths = true
		}
	}
	tests := []struct {
		host, path string
		want       string
	}{
		{"api.example.com", "/V1/x", "v1"},
		{"api.example.com", "/v1/ADMIN/users", "admin"},
		{"api.example.com", "/V1/Admin", "admin"},
		{"api.example.com", "/V10", "root"},
		{"api.example.com", "/Exact/x", "exact"},
		{"api.example.com", "/exact/x", "root"},
		{"api.example.com", "/EXACT", "root"},
		{"api.example.com", "/\u212A1", "root"},
		{"many.example.com", "/M3/x", "m3"},
		{"many.example.com", "/m3", "m3"},
		{"many.example.com", "/M30", "many-root"},
		{"many.example.com", "/Exact/y", "many-exact"},
		{"many.example.com", "/exact/y", "many-root"},
		{"many.example.com", "/EXACT", "many-root"},
	}
	for _, tt := range tests {
		got := ""
		if a := set.Lookup(tt.host, tt.path); a != nil {
			got = a.Name
		}
		if got != tt.want {
			t.Errorf("Lookup(%q, %q) = %q, want %q", tt.host, tt.path, got, tt.want)
		}
	}
}

func TestLookupNilSet(t *testing.T) {
	var s *Set
	if got := s.Lookup("a.example.com", "/"); got != nil {
		t.Errorf("nil Set Lookup = %v, want nil", got)
	}
}

func TestLookupAllocs(t *testing.T) {
	set := mustParse(t, appsFile([]string{"wild", "*.example.com/v1"}, []string{"exact", "app.example.com/v2"}))
	allocs := testing.AllocsPerRun(100, func() {
		set.Lookup("app.example.com", "/v1/x")
		set.Lookup("a.example.com", "/v1/x")
	})
	if allocs != 0 {
		t.Errorf("Lookup allocs = %v, want 0", allocs)
	}
}

func TestPolicyCoversPath(t *testing.T) {
	tests := []struct {
		name  string
		paths []string
		exact bool // case_sensitive_paths
		give  string
		want  bool
	}{
		{"no paths", nil, false, "/x", true},
		{"root", []string{"/"}, false, "/x", true},
		{"itself", []string{"/healthz"}, false, "/healthz", true},
		{"child", []string{"/healthz"}, false, "/healthz/live", true},
		{"boundary", []string{"/healthz"}, false, "/healthzz", false},
		{"second entry", []string{"/a", "/b"}, false, "/b/c", true},
		{"none", []string{"/a", "/b"}, false, "/c", false},
		{"upper-case path folds", []string{"/admin"}, false, "/ADMIN/users", true},
		{"mixed-case path folds", []string{"/admin"}, false, "/aDmIn", true},
		{"upper-case prefix folds", []string{"/Admin"}, false, "/admin/x", true},
		{"fold keeps the boundary", []string{"/admin"}, false, "/ADMINS", false},
		{"case-sensitive refuses other case", []string{"/admin"}, true, "/ADMIN/users", false},
		{"case-sensitive exact", []string{"/admin"}, true, "/admin/users", true},
		// Only A-Z fold: the Kelvin sign (3 bytes) and the fullwidth
		// letters never stand in for an ASCII letter.
		{"kelvin sign is not k", []string{"/kate"}, false, "/\u212Aate", false},
		{"fullwidth is not ascii", []string{"/admin"}, false, "/\uff41dmin", false},
		{"non-ascii compares bytewise", []string{"/caf%C3%A9"}, false, "/CAF%C3%A9/x", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Policy{Paths: tt.paths}
			if got := p.CoversPath(tt.give, tt.exact); got != tt.want {
				t.Errorf("CoversPath(%q, exact=%v) with %q = %v, want %v", tt.give, tt.exact, tt.paths, got, tt.want)
			}
		})
	}
}
