package authz

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/accessgate/accessgate/policies"
	"github.com/accessgate/accessgate/test/testkit"
)

// revisionFixture is an Engine on testdata/revision.yaml (default_action:
// allow) and tokens for it.
func revisionFixture(t *testing.T) *engineFixture {
	t.Helper()
	return newEngineFixtureFrom(t, "testdata/revision.yaml")
}

func appNamed(t *testing.T, set *policies.Set, name string) *policies.Application {
	t.Helper()
	for _, a := range set.Applications {
		if a.Name == name {
			return a
		}
	}
	t.Fatalf("no application %q", name)
	return nil
}

type decideCase struct {
	name       string
	give       *Request
	wantStatus int
	wantReason Reason
}

func runDecide(t *testing.T, e *Engine, tests []decideCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.Decide(context.Background(), tt.give)
			if d.Status != tt.wantStatus || d.Reason != tt.wantReason {
				t.Errorf("Decide(%q %q) = %d %q (app %q, policy %q), want %d %q",
					tt.give.Host, tt.give.Path, d.Status, d.Reason, d.Application, d.Policy, tt.wantStatus, tt.wantReason)
			}
		})
	}
}

// TestDecidePathRevision: path parameters, encoded ';', backslashes,
// invalid UTF-8 and letter case, against a block on /admin under
// default_action: allow. A request the gate judged as another path would
// be forwarded (200).
func TestDecidePathRevision(t *testing.T) {
	f := revisionFixture(t)
	alice := "CF_Authorization=" + f.token(claims{email: "alice@example.com"})
	get := func(host, path string) *Request { return req("GET", host, path, "cookie", alice) }
	runDecide(t, f.engine, []decideCase{
		{"plain allowed", get("app.example.com", "/users"), 200, ReasonAllowed},
		{"plain blocked", get("app.example.com", "/admin/users"), 403, ReasonBlocked},
		{"path parameter", get("app.example.com", "/admin;x/users"), 403, ReasonBlocked},
		{"empty path parameter", get("app.example.com", "/admin;/settings"), 403, ReasonBlocked},
		{"jsessionid", get("app.example.com", "/admin;jsessionid=1"), 403, ReasonBlocked},
		{"parameter before", get("app.example.com", "/;x/admin/users"), 403, ReasonBlocked},
		{"parameter elsewhere", get("app.example.com", "/users;x"), 200, ReasonAllowed},
		{"dot-dot parameter", get("app.example.com", "/x/..;/admin"), 400, ReasonBadRequest},
		{"dot-dot jsessionid", get("app.example.com", "/x/..;jsessionid=1/admin"), 400, ReasonBadRequest},
		{"encoded dot-dot parameter", get("app.example.com", "/x/%2e%2e;x/admin"), 400, ReasonBadRequest},
		{"encoded semicolon", get("app.example.com", "/admin%3Bx/users"), 400, ReasonBadRequest},
		{"encoded semicolon lower", get("app.example.com", "/admin%3bx/users"), 400, ReasonBadRequest},
		{"raw backslash", get("app.example.com", `/x\..\admin`), 400, ReasonBadRequest},
		{"overlong dot 2 bytes", get("app.example.com", "/%c0%ae%c0%ae/admin"), 400, ReasonBadRequest},
		{"overlong dot 3 bytes", get("app.example.com", "/%e0%80%ae%e0%80%ae/admin"), 400, ReasonBadRequest},
		{"overlong slash", get("app.example.com", "/x%c0%afadmin"), 400, ReasonBadRequest},
		{"overlong dot 5 bytes", get("app.example.com", "/%f8%80%80%80%ae/admin"), 400, ReasonBadRequest},
		{"latin-1 path", get("app.example.com", "/caf%e9"), 400, ReasonBadRequest},
		{"utf-8 path", get("app.example.com", "/caf%c3%a9"), 200, ReasonAllowed},
		{"upper case", get("app.example.com", "/ADMIN/users"), 403, ReasonBlocked},
		{"mixed case", get("app.example.com", "/aDmIn"), 403, ReasonBlocked},
		{"case and parameter", get("app.example.com", "/Admin;x/users"), 403, ReasonBlocked},
		{"case keeps the boundary", get("app.example.com", "/ADMINS"), 200, ReasonAllowed},
		{"kelvin is not k", get("app.example.com", "/\u212Aadmin"), 200, ReasonAllowed},
		{"application by case", get("api.example.com", "/V1/x"), 403, ReasonBlocked},
		{"application by parameter", get("api.example.com", "/v1;x/y"), 403, ReasonBlocked},
		{"application boundary", get("api.example.com", "/V10"), 200, ReasonBypass},
	})

	// case_sensitive_paths (set on a fresh Set's applications, which its
	// host index points at): prefixes compare exactly, for policy paths and
	// for the application choice.
	f2 := revisionFixture(t)
	for _, name := range []string{"exact", "v1"} {
		appNamed(t, f2.engine.Set(), name).CaseSensitivePaths = true
	}
	alice2 := "CF_Authorization=" + f2.token(claims{email: "alice@example.com"})
	get = func(host, path string) *Request { return req("GET", host, path, "cookie", alice2) }
	runDecide(t, f2.engine, []decideCase{
		{"case-sensitive other case passes the block", get("exact.example.com", "/ADMIN/users"), 200, ReasonAllowed},
		{"case-sensitive same case blocked", get("exact.example.com", "/admin/users"), 403, ReasonBlocked},
		{"case-sensitive parameter still cut", get("exact.example.com", "/admin;x/users"), 403, ReasonBlocked},
		{"case-sensitive application not chosen", get("api.example.com", "/V1/x"), 200, ReasonBypass},
		{"case-sensitive application chosen", get("api.example.com", "/v1/x"), 403, ReasonBlocked},
		{"others still fold", get("app.example.com", "/ADMIN"), 403, ReasonBlocked},
	})
}

// TestDecideHostRevision: under default_action: allow, no spelling of a
// host may find "no application" and be forwarded.
func TestDecideHostRevision(t *testing.T) {
	f := revisionFixture(t)
	get := func(host string) *Request { return req("GET", host, "/users") }
	runDecide(t, f.engine, []decideCase{
		{"known host", get("app.example.com"), 401, ReasonTokenMissing},
		{"one trailing dot", get("app.example.com."), 401, ReasonTokenMissing},
		{"unknown host forwarded", get("other.example.org"), 200, ReasonNoApplication},
		{"two trailing dots", get("app.example.com.."), 400, ReasonBadRequest},
		{"empty label", get("app..example.com"), 400, ReasonBadRequest},
		{"leading dot", get(".app.example.com"), 400, ReasonBadRequest},
		{"kelvin sign", get("\u212Aate.example.com"), 400, ReasonBadRequest},
		{"fullwidth", get("\uff41pp.example.com"), 400, ReasonBadRequest},
		{"userinfo", get("x@app.example.com"), 400, ReasonBadRequest},
		{"plus", get("app+x.example.com"), 400, ReasonBadRequest},
		{"percent", get("app%2eexample.com"), 400, ReasonBadRequest},
	})
}

func TestForwardedAddr(t *testing.T) {
	tests := []struct {
		give string
		want string // "" for not an address
	}{
		{"192.0.2.7", "192.0.2.7"},
		{"192.0.2.7:51000", "192.0.2.7"},
		{"192.0.2.7:0", "192.0.2.7"},
		{"192.0.2.7:65535", "192.0.2.7"},
		{"2001:db8::1", "2001:db8::1"},
		{"[2001:db8::1]", "2001:db8::1"},
		{"[2001:db8::1]:443", "2001:db8::1"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:80", "192.0.2.7"},
		{"192.0.2.7:http", ""},
		{"192.0.2.7:65536", ""},
		{"192.0.2.7:", ""},
		{"192.0.2.7:-1", ""},
		{"192.0.2.7:+80", ""},
		{"192.0.2.7:8 0", ""},
		{"unknown", ""},
		{"", ""},
		{"0x7f.1", ""},
		{"0x7f000001", ""},
		{"0177.0.0.1", ""},
		{"127.1", ""},
		{"2130706433", ""},
		{"fe80::1%eth0", ""},
		{"[fe80::1%eth0]", ""},
		{"[fe80::1%25eth0]:80", ""},
		{"[192.0.2.7]", ""},
		{"[192.0.2.7]:80", ""},
		{"[2001:db8::1]:http", ""},
		{"[2001:db8::1]x", ""},
		{"[2001:db8::1", ""},
		{"2001:db8::1:443:x", ""},
		{"_hidden", ""},
		{"192.0.2.7:80:80", ""},
		{" 192.0.2.7 ", "192.0.2.7"},
		{"\t[2001:db8::1]:443 ", "2001:db8::1"},
		{"010.0.0.1", ""},
	}
	for _, tt := range tests {
		a, ok := ForwardedAddr(tt.give)
		got := ""
		if ok {
			got = a.String()
		}
		if got != tt.want {
			t.Errorf("ForwardedAddr(%q) = %q, %v, want %q", tt.give, got, ok, tt.want)
		}
	}
}

// TestDecideForwardedFor: entries with ports are read, anything else is
// an unknown address, and an unknown address reaching a policy with an ip
// selector is 400, never "not in the list".
func TestDecideForwardedFor(t *testing.T) {
	f := revisionFixture(t)
	alice := "CF_Authorization=" + f.token(claims{email: "alice@example.com"})
	proxy := netip.MustParseAddr("10.0.0.1")
	via := func(path, xff string, headers ...string) *Request {
		r := req("GET", "office.example.com", path, append([]string{"x-forwarded-for", xff}, headers...)...)
		r.SourceIP = proxy
		return r
	}
	noSource := req("GET", "office.example.com", "/", "cookie", alice)
	noSource.SourceIP = netip.Addr{}
	direct := req("GET", "office.example.com", "/", "cookie", alice, "x-forwarded-for", "unknown")
	mapped := req("GET", "office.example.com", "/", "cookie", alice)
	mapped.SourceIP = netip.MustParseAddr("::ffff:198.51.100.9")
	runDecide(t, f.engine, []decideCase{
		{"address excluded", via("/", "198.51.100.7", "cookie", alice), 403, ReasonNoPolicyMatch},
		{"address:port excluded", via("/", "198.51.100.7:51000", "cookie", alice), 403, ReasonNoPolicyMatch},
		{"mapped excluded", via("/", "::ffff:198.51.100.7", "cookie", alice), 403, ReasonNoPolicyMatch},
		{"bracketed mapped:port excluded", via("/", "[::ffff:198.51.100.7]:443", "cookie", alice), 403, ReasonNoPolicyMatch},
		{"mapped source excluded", mapped, 403, ReasonNoPolicyMatch},
		{"other address allowed", via("/", "192.0.2.7:51000", "cookie", alice), 200, ReasonAllowed},
		{"ipv6:port allowed", via("/", "[2001:db8::1]:443", "cookie", alice), 200, ReasonAllowed},
		{"named port", via("/", "198.51.100.7:http", "cookie", alice), 400, ReasonBadRequest},
		{"unknown", via("/", "unknown", "cookie", alice), 400, ReasonBadRequest},
		{"obfuscated", via("/", "0x7f.1", "cookie", alice), 400, ReasonBadRequest},
		{"zone", via("/", "fe80::1%eth0", "cookie", alice), 400, ReasonBadRequest},
		{"port out of range", via("/", "198.51.100.7:65536", "cookie", alice), 400, ReasonBadRequest},
		{"unknown rightmost", via("/", "192.0.2.7, unknown", "cookie", alice), 400, ReasonBadRequest},
		{"unknown left of the client", via("/", "unknown, 192.0.2.7", "cookie", alice), 200, ReasonAllowed},
		{"no source address", noSource, 400, ReasonBadRequest},
		{"untrusted peer is the client", direct, 200, ReasonAllowed},
		// Only a checked policy with an ip selector asks for the address.
		{"bypass without ip", via("/healthz", "unknown"), 200, ReasonBypass},
		{"bypass with ip exclude", via("/public", "unknown"), 400, ReasonBadRequest},
		{"bypass with ip exclude known", via("/public", "192.0.2.7:1"), 200, ReasonBypass},
		{"bypass with ip exclude excluded", via("/public", "198.51.100.7:1"), 401, ReasonTokenMissing},
		{"no token: the allow policy is never checked", via("/", "unknown"), 401, ReasonTokenMissing},
	})
}

// TestDecideASCIIFold: only A-Z fold, on the request side as on the policy
// side: a Kelvin sign never matches "k", and "É" only "É".
func TestDecideASCIIFold(t *testing.T) {
	f := revisionFixture(t)
	// What the policy side compiles `email: [ÉVE@example.com]` to once only
	// A-Z fold: set by hand so this test does not depend on the parser.
	people := appNamed(t, f.engine.Set(), "people")
	people.PostAuth[1].Include[0].Set = map[string]struct{}{"Éve@example.com": {}}
	tok := func(email, country string) string {
		return "CF_Authorization=" + f.token(claims{email: email, country: country})
	}
	get := func(host, cookie string) *Request { return req("GET", host, "/", "cookie", cookie) }
	runDecide(t, f.engine, []decideCase{
		{"ascii upper case", get("people.example.com", tok("KATE@EXAMPLE.COM", "")), 403, ReasonBlocked},
		{"kelvin sign is not K", get("people.example.com", tok("\u212AATE@EXAMPLE.com", "")), 403, ReasonNoPolicyMatch},
		{"É equals É", get("people.example.com", tok("ÉVE@example.com", "")), 200, ReasonAllowed},
		{"É with ascii folding", get("people.example.com", tok("ÉvE@EXAMPLE.COM", "")), 200, ReasonAllowed},
		{"é is not É", get("people.example.com", tok("éve@example.com", "")), 403, ReasonNoPolicyMatch},
		{"country upper", get("people.example.com", tok("x@y.org", "NL")), 200, ReasonAllowed},
		{"country kelvin", get("people.example.com", tok("x@y.org", "N\u212A")), 403, ReasonNoPolicyMatch},
		{"email_domain upper", get("plain.example.com", tok("bob@EXAMPLE.COM", "")), 200, ReasonAllowed},
		{"email_domain kelvin", get("plain.example.com", tok("bob@EXAMPLE.CO\u212A", "")), 403, ReasonNoPolicyMatch},
	})
}

// varyOf returns the Vary headers of d and whether any other CORS header
// is there.
func varyOf(d Decision) (vary []Header, otherCORS bool) {
	for _, h := range d.ResponseHeaders {
		switch {
		case h.Key == hdrVary:
			vary = append(vary, h)
		case strings.HasPrefix(h.Key, "access-control-"):
			otherCORS = true
		}
	}
	return vary, otherCORS
}

// TestDecideVaryOrigin: every answer of a CORS application that is not a
// preflight carries Vary: Origin (section 4, revisions 2 and 3), whatever
// the Origin; every 400 too; the 302 and the 400 carry no other CORS header.
func TestDecideVaryOrigin(t *testing.T) {
	f := revisionFixture(t)
	alice := "CF_Authorization=" + f.token(claims{email: "alice@example.com"})
	const good, evil = "https://www.example.com", "https://evil.example.org"
	nav := []string{"sec-fetch-mode", "navigate"}
	tests := []struct {
		name       string
		give       *Request
		wantStatus int
		wantVary   string // "" for none
		wantCORS   bool   // other CORS headers
	}{
		{"forward allowed origin", req("GET", "app.example.com", "/", "cookie", alice, "origin", good), 200, "Origin", true},
		{"forward no origin", req("GET", "app.example.com", "/", "cookie", alice), 200, "Origin", false},
		{"forward refused origin", req("GET", "app.example.com", "/", "cookie", alice, "origin", evil), 200, "Origin", false},
		{"302 no origin", req("GET", "app.example.com", "/", nav...), 302, "Origin", false},
		{"302 allowed origin", req("GET", "app.example.com", "/", append(nav, "origin", good)...), 302, "Origin", false},
		{"401 no origin", req("GET", "app.example.com", "/"), 401, "Origin", false},
		{"401 refused origin", req("GET", "app.example.com", "/", "origin", evil), 401, "Origin", false},
		{"401 allowed origin", req("GET", "app.example.com", "/", "origin", good), 401, "Origin", true},
		{"403 no origin", req("GET", "app.example.com", "/admin", "cookie", alice), 403, "Origin", false},
		{"403 allowed origin", req("GET", "app.example.com", "/admin", "cookie", alice, "origin", good), 403, "Origin", true},
		{"403 page", req("GET", "app.example.com", "/admin", append(nav, "cookie", alice)...), 403, "Origin", false},
		{"400 of a CORS application", req("GET", "app.example.com", "/a%3Bb", "origin", good), 400, "Origin", false},
		{"400 before any application", req("GET", "app.example.com..", "/", "origin", good), 400, "Origin", false},
		{"400 on a host without cors", req("GET", "plain.example.com", "/%2F"), 400, "Origin", false},
		{"preflight", req("OPTIONS", "app.example.com", "/", "origin", good, "access-control-request-method", "PUT"), 204, preflightVary, true},
		{"preflight refused", req("OPTIONS", "app.example.com", "/", "origin", evil, "access-control-request-method", "PUT"), 403, "", false},
		{"no cors: forward", req("GET", "plain.example.com", "/", "cookie", alice, "origin", good), 200, "", false},
		{"no cors: 401", req("GET", "plain.example.com", "/"), 401, "", false},
		{"no cors: 302", req("GET", "plain.example.com", "/", nav...), 302, "", false},
		{"no application forwarded", req("GET", "other.example.org", "/", "origin", good), 200, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := f.engine.Decide(context.Background(), tt.give)
			if d.Status != tt.wantStatus {
				t.Fatalf("Decide = %d %q, want %d", d.Status, d.Reason, tt.wantStatus)
			}
			vary, cors := varyOf(d)
			switch {
			case tt.wantVary == "" && len(vary) != 0:
				t.Errorf("Vary = %v, want none", vary)
			case tt.wantVary != "" && (len(vary) != 1 || vary[0].Value != tt.wantVary):
				t.Errorf("Vary = %v, want exactly %q", vary, tt.wantVary)
			case d.Verdict == Forward && len(vary) == 1 && !vary[0].Append:
				t.Errorf("forward Vary %v: want it appended to the origin's", vary)
			}
			if cors != tt.wantCORS {
				t.Errorf("other CORS headers present = %v, want %v: %v", cors, tt.wantCORS, d.ResponseHeaders)
			}
		})
	}
}

// TestDecidePreflightAbsentLists: an absent allow_methods or allow_headers
// is an empty list, never "everything" (section 5, revision 3).
func TestDecidePreflightAbsentLists(t *testing.T) {
	f := revisionFixture(t)
	pf := func(host, origin, method, headers string) *Request {
		return req("OPTIONS", host, "/", "origin", origin, "access-control-request-method", method, "access-control-request-headers", headers)
	}
	const good = "https://www.example.com"
	runDecide(t, f.engine, []decideCase{
		{"no allow_headers, a header requested", pf("bare.example.com", good, "GET", "content-type"), 403, ReasonPreflightHeader},
		{"no allow_headers, none requested", pf("bare.example.com", good, "GET", ""), 204, ReasonPreflight},
		{"no allow_methods", pf("nomethods.example.com", good, "GET", ""), 403, ReasonPreflightMethod},
		{"no allow_methods, a header allowed", pf("nomethods.example.com", good, "POST", "content-type"), 403, ReasonPreflightMethod},
		{"listed header", pf("app.example.com", good, "PUT", "Content-Type"), 204, ReasonPreflight},
		{"unlisted header", pf("app.example.com", good, "PUT", "content-type, x-other"), 403, ReasonPreflightHeader},
		{"unlisted method", pf("app.example.com", good, "DELETE", ""), 403, ReasonPreflightMethod},
		{"unlisted origin", pf("app.example.com", "https://evil.example.org", "PUT", ""), 403, ReasonPreflightOrigin},
	})
	// A hand-built CORS with no list at all allows nothing.
	if reason, _ := preflight(pf("x", good, "GET", "content-type"), &policies.CORS{}); reason != ReasonPreflightOrigin {
		t.Errorf("preflight with an empty CORS = %q, want %q", reason, ReasonPreflightOrigin)
	}
}

// parserSelectorKinds returns the name of every selector kind the policy
// parser knows (policies.SelectorKinds), so a kind added to the parser shows
// up here without an edit.
func parserSelectorKinds(t *testing.T) []string {
	t.Helper()
	var kinds []string
	for _, k := range policies.SelectorKinds {
		kinds = append(kinds, k.String())
	}
	sort.Strings(kinds)
	return kinds
}

// selectorFile is a policy file whose one allow policy excludes sel.
func selectorFile(sel string) string {
	return `issuers:
  - name: team
    issuer: https://team.example.com
    jwks_url: https://team.example.com/cdn-cgi/access/certs
    login_url: https://team.example.com/cdn-cgi/access/login/{host}?kid={aud}&redirect_url={redirect}
service_tokens:
  - name: bot
    client_id: bot.access
    client_secret_sha256: 1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0
applications:
  - name: app
    domains: [app.example.com]
    issuer: team
    audience: aud
    policies:
      - name: p
        action: allow
        include: [{everyone: true}]
        exclude: [{` + sel + `}]
`
}

// selectorValues holds a valid value for every selector kind. A kind the
// parser gains fails TestSelectorKindsAllHandled until it is added here
// and matched in authz.
var selectorValues = map[string]string{
	"everyone":          "true",
	"email":             "[a@example.com]",
	"email_domain":      "[example.com]",
	"group":             "[admins]",
	"claim":             "{dept: x}",
	"ip":                "[10.0.0.0/8]",
	"country":           "[nl]",
	"service_token":     "[bot]",
	"any_service_token": "true",
	"valid_certificate": "true",
	"common_name":       "[client]",
}

// TestSelectorKindsAllHandled walks every selector kind the parser knows
// and fails when match has no case for it: a kind without one would be
// "no match", which in an exclude lets everyone in.
func TestSelectorKindsAllHandled(t *testing.T) {
	kinds := parserSelectorKinds(t)
	if len(kinds) < 10 {
		t.Fatalf("parser knows %d selector kinds (%v), want at least 10", len(kinds), kinds)
	}
	for _, name := range kinds {
		t.Run(name, func(t *testing.T) {
			v, ok := selectorValues[name]
			if !ok {
				t.Fatalf("selector %q has no test value: add it to selectorValues and a case to subject.match", name)
			}
			src := selectorFile(name + ": " + v)
			set, err := policies.Parse("kinds.yaml", []byte(src))
			if err != nil && strings.Contains(err.Error(), "client_certificate_authorities") {
				// Certificate selectors need CAs once the parser checks
				// that: give it a real bundle.
				ca := filepath.Join(t.TempDir(), "ca.pem")
				if err := os.WriteFile(ca, testkit.NewCA(t, "kinds CA").PEM, 0o600); err != nil {
					t.Fatal(err)
				}
				set, err = policies.Parse("kinds.yaml", []byte("client_certificate_authorities: ["+ca+"]\n"+src))
			}
			if err != nil {
				t.Fatalf("parse %s: %v", name, err)
			}
			sel := set.Applications[0].PostAuth[0].Exclude[0]
			s := subject{req: req("GET", "app.example.com", "/"), now: time.Now}
			if _, known := s.match(sel); !known {
				t.Errorf("selector %q (kind %d) has no case in subject.match", name, sel.Kind)
			}
		})
	}
	// Every kind the SelectorKind enum declares, whether or not the parser
	// produces it yet (common_name), has a case too.
	for k := policies.SelEveryone; k <= policies.SelCommonName; k++ {
		s := subject{req: req("GET", "app.example.com", "/"), now: time.Now}
		if _, known := s.match(&policies.Selector{Kind: k}); !known {
			t.Errorf("SelectorKind %d has no case in subject.match", k)
		}
	}
}

// TestUnknownSelectorFailsClosed: a selector kind match has no case for
// refuses the request wherever it sits, in an allow or a block, in an
// include, a require or an exclude.
func TestUnknownSelectorFailsClosed(t *testing.T) {
	f := revisionFixture(t)
	alice := "CF_Authorization=" + f.token(claims{email: "alice@example.com"})
	unknown := &policies.Selector{Kind: policies.SelectorKind(1000)}
	everyone := &policies.Selector{Kind: policies.SelEveryone}
	nobody := &policies.Selector{Kind: policies.SelEmail, Set: map[string]struct{}{"nobody@example.com": {}}}
	tests := []struct {
		name   string
		policy policies.Policy
	}{
		{"allow exclude", policies.Policy{Action: policies.ActionAllow, Include: []*policies.Selector{everyone}, Exclude: []*policies.Selector{unknown}}},
		{"allow require", policies.Policy{Action: policies.ActionAllow, Include: []*policies.Selector{everyone}, Require: []*policies.Selector{unknown}}},
		{"allow include", policies.Policy{Action: policies.ActionAllow, Include: []*policies.Selector{nobody, unknown}}},
		{"block exclude", policies.Policy{Action: policies.ActionBlock, Include: []*policies.Selector{everyone}, Exclude: []*policies.Selector{unknown}}},
		{"block include", policies.Policy{Action: policies.ActionBlock, Include: []*policies.Selector{unknown}}},
		{"bypass exclude", policies.Policy{Action: policies.ActionBypass, Include: []*policies.Selector{everyone}, Exclude: []*policies.Selector{unknown}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.policy
			p.Name = "odd"
			allow := &policies.Policy{Name: "all", Action: policies.ActionAllow, Include: []*policies.Selector{everyone}}
			app := appNamed(t, f.engine.Set(), "plain")
			savedPre, savedPost := app.PreAuth, app.PostAuth
			t.Cleanup(func() { app.PreAuth, app.PostAuth = savedPre, savedPost })
			if p.Action == policies.ActionBypass {
				app.PreAuth = []*policies.Policy{&p}
			} else {
				app.PostAuth = []*policies.Policy{&p, allow}
			}
			d := f.engine.Decide(context.Background(), req("GET", "plain.example.com", "/", "cookie", alice))
			if d.Verdict == Forward || d.Status != 403 {
				t.Errorf("Decide with an unknown selector kind = %d %q policy %q, want 403 (fail closed)", d.Status, d.Reason, d.Policy)
			}
		})
	}
}

// TestOwnedHeadersOneList: every removal list is ownedHeaders less what
// its forward sets, and every token header is read by tokenFrom and
// removed unless set: adding a token source to tokenHeaders is one edit.
func TestOwnedHeadersOneList(t *testing.T) {
	lists := []struct {
		name string
		list []string
		sets []string
	}{
		{"removeKeepingNothing", removeKeepingNothing, nil},
		{"removeKeepingEmailAndToken", removeKeepingEmailAndToken, []string{hdrUserEmail, hdrJWTAssertion}},
		{"removeKeepingToken", removeKeepingToken, []string{hdrJWTAssertion}},
		{"removeKeepingClientID", removeKeepingClientID, []string{hdrClientID}},
	}
	for _, l := range lists {
		for _, h := range ownedHeaders {
			if removed, set := slices.Contains(l.list, h), slices.Contains(l.sets, h); removed == set {
				t.Errorf("%s: %s removed=%v set=%v, want exactly one", l.name, h, removed, set)
			}
		}
		if len(l.list)+len(l.sets) != len(ownedHeaders) {
			t.Errorf("%s has %d entries, want %d", l.name, len(l.list), len(ownedHeaders)-len(l.sets))
		}
	}
	for _, h := range tokenHeaders {
		if !slices.Contains(ownedHeaders, h) {
			t.Errorf("token header %s is not owned: a client could pass it to the origin", h)
		}
		if got := tokenFrom(map[string]string{h: "tok-" + h}); got != "tok-"+h {
			t.Errorf("tokenFrom(%s) = %q: the token header is not read", h, got)
		}
	}
	for _, h := range []string{hdrUserEmail, hdrJWTAssertion, hdrClientID, hdrClientSecret, hdrAccessToken} {
		if !slices.Contains(ownedHeaders, h) {
			t.Errorf("%s is not in ownedHeaders", h)
		}
	}
}
