package policies

import (
	"encoding/hex"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// set builds a selector value set.
func set(values ...string) map[string]struct{} {
	m := make(map[string]struct{}, len(values))
	for _, v := range values {
		m[v] = struct{}{}
	}
	return m
}

func sha(tb testing.TB, s string) [32]byte {
	tb.Helper()
	var out [32]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		tb.Fatalf("bad test digest %q", s)
	}
	copy(out[:], b)
	return out
}

// issuerFields drops what is compared separately (template, key set).
func issuerFields(i *Issuer) Issuer {
	c := *i
	c.LoginURL, c.FileKeys = nil, nil
	return c
}

// corsFields drops the origin matcher, which is checked with OriginAllowed.
func corsFields(c *CORS) CORS {
	out := *c
	out.origins = originMatcher{}
	return out
}

func mustLoad(tb testing.TB, path string) *Set {
	tb.Helper()
	s, err := Load(path)
	if err != nil {
		tb.Fatalf("Load(%s): %v", path, err)
	}
	return s
}

// contractPolicies is what the contract §2 example's policies compile to.
var contractPreAuth = []*Policy{
	{Name: "health", Action: ActionBypass, Paths: []string{"/healthz"},
		Include: []*Selector{{Kind: SelEveryone}}},
	{Name: "bots", Action: ActionServiceAuth,
		Include: []*Selector{{Kind: SelServiceToken, Set: set("ci-bot")}}},
}

var contractPostAuth = []*Policy{
	{Name: "block-contractors", Action: ActionBlock,
		Include: []*Selector{{Kind: SelEmailDomain, Set: set("contractor.example.com")}}},
	{Name: "staff", Action: ActionAllow,
		Include: []*Selector{
			{Kind: SelEmailDomain, Set: set("example.com")},
			{Kind: SelEmail, Set: set("alice@partner.org")},
		},
		Require: []*Selector{{Kind: SelIP, CIDRs: []netip.Prefix{
			netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}}},
		Exclude: []*Selector{{Kind: SelEmail, Set: set("mallory@example.com")}},
	},
}

func TestLoadContractExample(t *testing.T) {
	tests := []struct {
		file     string
		wantURL  string
		wantFile string
		wantKeys int
	}{
		{"contract.yaml", "https://team.example.com/cdn-cgi/access/certs", "", 0},
		{"contract_jwks_file.yaml", "", filepath.Join("testdata", "valid", "keys", "jwks.json"), 2},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			s := mustLoad(t, filepath.Join("testdata", "valid", tt.file))
			if s.DefaultAllow || len(s.TrustedProxies) != 0 || s.ClientCAs != nil {
				t.Errorf("DefaultAllow, TrustedProxies, ClientCAs = %v, %v, %v, want false, none, nil", s.DefaultAllow, s.TrustedProxies, s.ClientCAs)
			}
			if len(s.Issuers) != 1 {
				t.Fatalf("len(Issuers) = %d, want 1", len(s.Issuers))
			}
			iss := s.Issuers[0]
			wantIss := Issuer{Name: "team", Issuer: "https://team.example.com", JWKSURL: tt.wantURL,
				JWKSFile: tt.wantFile, JWKSRefresh: time.Hour, Leeway: 30 * time.Second}
			if got := issuerFields(iss); !reflect.DeepEqual(got, wantIss) {
				t.Errorf("Issuer = %+v, want %+v", got, wantIss)
			}
			if got := iss.LoginURL.String(); got != "https://team.example.com/cdn-cgi/access/login/{host}?kid={aud}&redirect_url={redirect}" {
				t.Errorf("LoginURL = %q", got)
			}
			gotKeys := 0
			if iss.FileKeys != nil {
				gotKeys = iss.FileKeys.Len()
			}
			if gotKeys != tt.wantKeys {
				t.Errorf("FileKeys.Len() = %d, want %d", gotKeys, tt.wantKeys)
			}

			wantTok := &ServiceToken{Name: "ci-bot", ClientID: "88bf3b6d86161464f6509f7219099e57.access",
				SecretSHA256: sha(t, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
				Expires:      time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC)}
			wantToks := map[string]*ServiceToken{wantTok.ClientID: wantTok}
			if !reflect.DeepEqual(s.ServiceTokens, wantToks) {
				t.Errorf("ServiceTokens = %+v, want %+v", s.ServiceTokens, wantToks)
			}

			if len(s.Applications) != 1 {
				t.Fatalf("len(Applications) = %d, want 1", len(s.Applications))
			}
			app := s.Applications[0]
			if app.Issuer != iss {
				t.Errorf("Application.Issuer = %p, want the issuer %p", app.Issuer, iss)
			}
			gotApp := *app
			gotApp.Issuer, gotApp.CORS, gotApp.PreAuth, gotApp.PostAuth, gotApp.hostDomains = nil, nil, nil, nil, nil
			wantApp := Application{Name: "dashboard",
				Domains:         []string{"app.example.com", "*.app.example.com", "api.example.com/v1"},
				Audience:        "32eafc7626e974616deaf0dc3ce63d7bcbed58a2731e84d06bc3cdf1b53c4228",
				Unauthenticated: UnauthRedirect, IdentityHeaders: true,
				WWWAuthenticate: `Bearer realm="dashboard"`}
			if !reflect.DeepEqual(gotApp, wantApp) {
				t.Errorf("Application = %+v, want %+v", gotApp, wantApp)
			}
			if !reflect.DeepEqual(withoutRules(app.PreAuth), contractPreAuth) {
				t.Errorf("PreAuth = %s, want %s", dump(app.PreAuth), dump(contractPreAuth))
			}
			if !reflect.DeepEqual(withoutRules(app.PostAuth), contractPostAuth) {
				t.Errorf("PostAuth = %s, want %s", dump(app.PostAuth), dump(contractPostAuth))
			}
			wantCORS := CORS{
				AllowCredentials:   true,
				Methods:            set("GET", "POST", "PUT"),
				Headers:            set("content-type", "x-requested-with"),
				AllowMethodsValue:  "GET, POST, PUT",
				AllowHeadersValue:  "content-type, x-requested-with",
				ExposeHeadersValue: "x-request-id",
				MaxAgeValue:        "600",
			}
			if got := corsFields(app.CORS); !reflect.DeepEqual(got, wantCORS) {
				t.Errorf("CORS = %+v, want %+v", got, wantCORS)
			}
			for origin, want := range map[string]bool{
				"https://www.example.com": true, "https://x.example.com": true, "https://example.com": false,
			} {
				if got := app.CORS.OriginAllowed(origin); got != want {
					t.Errorf("OriginAllowed(%q) = %v, want %v", origin, got, want)
				}
			}
			if s.File != filepath.Join("testdata", "valid", tt.file) {
				t.Errorf("File = %q", s.File)
			}
		})
	}
}

func TestLoadFull(t *testing.T) {
	s := mustLoad(t, filepath.Join("testdata", "valid", "full.yaml"))
	if !s.DefaultAllow {
		t.Error("DefaultAllow = false, want true")
	}
	wantProxies := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32"),
		netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("10.1.0.0/16"),
	}
	if !reflect.DeepEqual(s.TrustedProxies, wantProxies) {
		t.Errorf("TrustedProxies = %v, want %v", s.TrustedProxies, wantProxies)
	}
	wantIss := Issuer{Name: "corp", Issuer: "https://corp.example.com", JWKSURL: "http://127.0.0.1:8080/keys",
		JWKSRefresh: 15 * time.Minute, Leeway: 0}
	if got := issuerFields(s.Issuers[0]); !reflect.DeepEqual(got, wantIss) {
		t.Errorf("Issuer = %+v, want %+v", got, wantIss)
	}
	if got, want := s.Issuers[0].LoginURL.Render("a.example.com", "0123", "https://a.example.com/"),
		"https://a.example.com/login?aud=0123&to=https%3A%2F%2Fa.example.com%2F"; got != want {
		t.Errorf("Render = %q, want %q", got, want)
	}
	wantToks := map[string]*ServiceToken{
		"ci.access": {Name: "ci-bot", ClientID: "ci.access",
			SecretSHA256: sha(t, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")},
		"12345": {Name: "backup", ClientID: "12345",
			SecretSHA256: sha(t, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"),
			Expires:      time.Date(2027, 6, 30, 10, 30, 0, 0, time.UTC)},
	}
	for id, want := range wantToks {
		got := s.ServiceTokens[id]
		if got == nil || got.Name != want.Name || got.SecretSHA256 != want.SecretSHA256 || !got.Expires.Equal(want.Expires) {
			t.Errorf("ServiceTokens[%q] = %+v, want %+v", id, got, want)
		}
	}

	admin := s.Applications[0]
	wantApp := Application{Name: `admin "console" \ v2`,
		Domains:  []string{"admin.example.com/Tools", "*.admin.example.com"},
		Audience: "0123", Unauthenticated: UnauthDeny, IdentityHeaders: false,
		WWWAuthenticate:    `Bearer realm="admin \"console\" \\ v2"`,
		CaseSensitivePaths: true}
	gotApp := *admin
	gotApp.Issuer, gotApp.CORS, gotApp.PreAuth, gotApp.PostAuth, gotApp.hostDomains = nil, nil, nil, nil, nil
	if !reflect.DeepEqual(gotApp, wantApp) {
		t.Errorf("Application = %+v, want %+v", gotApp, wantApp)
	}
	wantCORS := CORS{AllowAllOrigins: true, AllowAllMethods: true, AllowAllHeaders: true,
		AllowCredentials: true, AllowPrivateNetwork: true, MaxAgeValue: "0"}
	if got := corsFields(admin.CORS); !reflect.DeepEqual(got, wantCORS) {
		t.Errorf("CORS = %+v, want %+v", got, wantCORS)
	}
	if !admin.CORS.OriginAllowed("null") || !admin.CORS.OriginAllowed("https://any.example") {
		t.Error("allow_all_origins with \"null\": want both null and any origin allowed")
	}
	staff := []*Selector{
		{Kind: SelEmailDomain, Set: set("example.com")},
		{Kind: SelEmail, Set: set("alice@partner.org")},
	}
	wantPre := []*Policy{
		{Name: "probes", Action: ActionBypass, Paths: []string{"/healthz", "/ready", "/"},
			Include: []*Selector{{Kind: SelEveryone}}},
		{Name: "machines", Action: ActionServiceAuth, Include: []*Selector{
			{Kind: SelServiceToken, Set: set("ci-bot", "backup")}, {Kind: SelAnyServiceToken}}},
	}
	wantPost := []*Policy{
		{Name: "geo", Action: ActionBlock, Include: []*Selector{{Kind: SelCountry, Set: set("kp", "ir")}}},
		{Name: "staff", Action: ActionAllow, Include: staff,
			Require: []*Selector{
				{Kind: SelIP, CIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::1/128")}},
				{Kind: SelValidCertificate},
				{Kind: SelCommonName, Set: set("alice-laptop", "CI Runner")},
				{Kind: SelGroup, Set: set("Admins", "ops")},
			},
			Exclude: []*Selector{
				{Kind: SelClaim, ClaimPath: []string{"custom", "department"}, ClaimValue: "Sales"},
				{Kind: SelClaim, ClaimPath: []string{"contractor"}, ClaimValue: true},
				{Kind: SelClaim, ClaimPath: []string{"level"}, ClaimValue: float64(3)},
				{Kind: SelClaim, ClaimPath: []string{"score"}, ClaimValue: 2.5},
			}},
	}
	if !reflect.DeepEqual(withoutRules(admin.PreAuth), wantPre) {
		t.Errorf("PreAuth = %s, want %s", dump(admin.PreAuth), dump(wantPre))
	}
	if !reflect.DeepEqual(withoutRules(admin.PostAuth), wantPost) {
		t.Errorf("PostAuth = %s, want %s", dump(admin.PostAuth), dump(wantPost))
	}

	legacy := s.Applications[1]
	if got := corsFields(legacy.CORS); !reflect.DeepEqual(got, CORS{BypassOptionsToOrigin: true}) {
		t.Errorf("legacy CORS = %+v, want only BypassOptionsToOrigin", got)
	}
	if legacy.Unauthenticated != UnauthRedirect || !legacy.IdentityHeaders || legacy.CaseSensitivePaths {
		t.Errorf("legacy defaults = %v, %v, %v, want redirect, true, false", legacy.Unauthenticated, legacy.IdentityHeaders, legacy.CaseSensitivePaths)
	}
	if want := poolOf(t, filepath.Join("testdata", "valid", "certs", "ca.pem")); s.ClientCAs == nil || !s.ClientCAs.Equal(want) {
		t.Error("ClientCAs is not the pool of certs/ca.pem")
	}
	if !reflect.DeepEqual(withoutRules(legacy.PostAuth)[0].Include, staff) {
		t.Errorf("aliased include = %s, want %s", dump(legacy.PostAuth[0].Include), dump(staff))
	}
	for host, want := range map[string]*Application{
		"admin.example.com": nil, "x.admin.example.com": admin, "legacy.example.com": legacy,
	} {
		if got := s.Lookup(host, "/"); got != want {
			t.Errorf("Lookup(%q, /) = %v, want %v", host, got, want)
		}
	}
	if got := s.Lookup("admin.example.com", "/Tools/x"); got != admin {
		t.Errorf("Lookup(admin.example.com, /Tools/x) = %v, want admin", got)
	}
}

func TestLoadCloudflareCerts(t *testing.T) {
	s := mustLoad(t, filepath.Join("testdata", "valid", "cloudflare_certs.yaml"))
	keys := s.Issuers[0].FileKeys
	if keys == nil || keys.Len() != 2 {
		t.Fatalf("FileKeys = %v, want 2 keys", keys)
	}
	for _, kid := range []string{"rsa-1", "ec-1"} {
		if _, ok := keys.LookupKeyID(kid); !ok {
			t.Errorf("FileKeys.LookupKeyID(%q) not found", kid)
		}
	}
}

func TestLoadUnreadable(t *testing.T) {
	_, err := Load(filepath.Join("testdata", "no-such-file.yaml"))
	if err == nil {
		t.Fatal("Load(missing) = nil error")
	}
	if got := err.Error(); !contains(got, "no-such-file.yaml") {
		t.Errorf("Load(missing) error %q does not name the file", got)
	}
}
