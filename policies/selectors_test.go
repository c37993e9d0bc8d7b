package policies

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// policyFile wraps one application's policies (YAML list items, indented
// by six spaces) into a complete policy file.
func policyFile(policies string) string {
	return issuerYAML + `applications:
  - name: app
    domains: [app.example.com]
    issuer: team
    audience: aud
    policies:
` + policies
}

// TestSelectorValuesFoldASCIIOnly: email, email_domain and country values
// are folded with LowerASCII, so that a Kelvin sign or an É keeps its
// bytes instead of becoming another user's address.
func TestSelectorValuesFoldASCIIOnly(t *testing.T) {
	tests := []struct {
		name string
		give string // one selector, flow style
		want map[string]struct{}
	}{
		{"email upper ASCII", `{email: [Alice@Example.COM]}`, set("alice@example.com")},
		{"email Kelvin sign stays", "{email: [\"\\u212AATE@EXAMPLE.com\"]}", set("\u212Aate@example.com")},
		{"email É stays", `{email: [ÉVE@X.org]}`, set("Éve@x.org")},
		{"email_domain upper", `{email_domain: [Example.COM]}`, set("example.com")},
		{"country upper", `{country: [DE, us]}`, set("de", "us")},
		{"group exact", `{group: [Admins]}`, set("Admins")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, policyFile("      - {name: p, action: allow, include: ["+tt.give+"]}\n"))
			got := s.Applications[0].PostAuth[0].Include[0].Set
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Set = %+q, want %+q", keys(got), keys(tt.want))
			}
		})
	}
}

func keys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// col is the 1-based column (in characters, as yaml.v3 counts) where at
// first occurs in the policy line of parseOne.
func col(pol, at string) int {
	line := "      - " + pol
	i := strings.Index(line, at)
	if i < 0 {
		panic(fmt.Sprintf("%q not in %q", at, line))
	}
	return utf8.RuneCountInString(line[:i]) + 1
}

// parseOne parses a file with one policy (flow style) and returns the
// error text with the file name and the policy's line number removed:
// "COL: message" per problem, or "" when it is valid.
func parseOne(t *testing.T, pol string) string {
	t.Helper()
	src := policyFile("      - " + pol + "\n")
	_, err := Parse("p.yaml", []byte(src))
	if err == nil {
		return ""
	}
	prefix := fmt.Sprintf("p.yaml:%d:", strings.Count(src, "\n"))
	var out []string
	for _, l := range strings.Split(err.Error(), "\n") {
		rest, ok := strings.CutPrefix(l, prefix)
		if !ok {
			t.Fatalf("error %q is not on the policy's line", l)
		}
		out = append(out, rest)
	}
	return strings.Join(out, "\n")
}

// problem is one expected error: its message, at the column where at
// first occurs in the policy line.
type problem struct{ at, msg string }

// wantProblems renders problems as parseOne does.
func wantProblems(pol string, ps ...problem) string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%d: %s", col(pol, p.at), p.msg))
	}
	return strings.Join(out, "\n")
}

// TestIdentitySelectorsBeforeToken: bypass and service_auth run before any
// token is read, so a token selector there could never match: in an
// exclude it would exclude nobody. Each is an error at the selector's key;
// the other selectors stay valid there.
func TestIdentitySelectorsBeforeToken(t *testing.T) {
	id := func(sel, list, action string) string {
		return "identity selector " + sel + " in the " + list + " of a " + action +
			" policy: bypass and service_auth policies run before any token is read, so it can never match"
	}
	tests := []struct {
		name string
		give string
		want []problem
	}{
		{"email in bypass exclude", `{name: p, action: bypass, include: [{everyone: true}], exclude: [{email: [mallory@example.com]}]}`,
			[]problem{{"email:", id("email", "exclude", "bypass")}}},
		{"email_domain in bypass include", `{name: p, action: bypass, include: [{email_domain: [example.com]}]}`,
			[]problem{{"email_domain:", id("email_domain", "include", "bypass")}}},
		{"group in service_auth require", `{name: p, action: service_auth, include: [{any_service_token: true}], require: [{group: [ops]}]}`,
			[]problem{{"group:", id("group", "require", "service_auth")}}},
		{"claim in service_auth exclude", `{name: p, action: service_auth, include: [{any_service_token: true}], exclude: [{claim: {a: b}}]}`,
			[]problem{{"claim:", id("claim", "exclude", "service_auth")}}},
		{"country in bypass include", `{name: p, action: bypass, include: [{country: [de]}]}`,
			[]problem{{"country:", id("country", "include", "bypass")}}},
		{"two at once", `{name: p, action: bypass, include: [{email: [a@b.c]}, {group: [g]}]}`,
			[]problem{{"email:", id("email", "include", "bypass")}, {"group:", id("group", "include", "bypass")}}},
		{"non-identity selectors in bypass", `{name: p, action: bypass, include: [{everyone: true}], exclude: [{ip: [10.0.0.0/8]}]}`, nil},
		{"service tokens in service_auth", `{name: p, action: service_auth, include: [{any_service_token: true}], exclude: [{ip: [10.0.0.0/8]}]}`, nil},
		{"email in allow exclude", `{name: p, action: allow, include: [{everyone: true}], exclude: [{email: [mallory@example.com]}]}`, nil},
		{"email in block include", `{name: p, action: block, include: [{email: [mallory@example.com]}]}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := parseOne(t, tt.give), wantProblems(tt.give, tt.want...); got != want {
				t.Errorf("errors =\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// TestNonASCIIAddressWhereAMissFailsOpen: only A-Z fold, so an email or
// email_domain value with any other non-ASCII character (a letter, or a
// combining mark as in the NFD "e\u0301ve") may miss the token's spelling.
// In an exclude or a block policy that miss lets the user in: an error at
// the value. In an allow policy's include or require it can only fail
// closed: valid.
func TestNonASCIIAddressWhereAMissFailsOpen(t *testing.T) {
	bad := func(sel, quoted, char, where string) string {
		return sel + " " + quoted + " has a non-ASCII character (" + char +
			"): only A-Z fold, so in " + where + " it could silently miss the token's spelling and let the user in"
	}
	const exclude, block = "an exclude", "a block policy"
	tests := []struct {
		name string
		give string
		want []problem
	}{
		{"capital É in allow exclude", `{name: p, action: allow, include: [{everyone: true}], exclude: [{email: [ÉVE@x.org]}]}`,
			[]problem{{"ÉVE", bad("email", `"\u00c9VE@x.org"`, "U+00C9", exclude)}}},
		{"combining mark in allow exclude", `{name: p, action: allow, include: [{everyone: true}], exclude: [{email: ["e\u0301ve@x.org"]}]}`,
			[]problem{{`"e\u0301`, bad("email", `"e\u0301ve@x.org"`, "U+0301", exclude)}}},
		{"Kelvin sign in email_domain exclude", `{name: p, action: allow, include: [{everyone: true}], exclude: [{email_domain: ["\u212Aate.example"]}]}`,
			[]problem{{`"\u212A`, bad("email_domain", `"\u212aate.example"`, "U+212A", exclude)}}},
		{"block include", `{name: p, action: block, include: [{email: [éve@x.org]}]}`,
			[]problem{{"éve", bad("email", `"\u00e9ve@x.org"`, "U+00E9", block)}}},
		{"block require", `{name: p, action: block, include: [{everyone: true}], require: [{email_domain: [exämple.com]}]}`,
			[]problem{{"exämple", bad("email_domain", `"ex\u00e4mple.com"`, "U+00E4", block)}}},
		{"block exclude, second value", `{name: p, action: block, include: [{everyone: true}], exclude: [{email: [a@b.c, zoë@x.org]}]}`,
			[]problem{{"zoë", bad("email", `"zo\u00eb@x.org"`, "U+00EB", block)}}},
		{"fullwidth in block", `{name: p, action: block, include: [{email: ["\uFF41@x.org"]}]}`,
			[]problem{{`"\uFF41`, bad("email", `"\uff41@x.org"`, "U+FF41", block)}}},
		{"allow include stays valid", `{name: p, action: allow, include: [{email: [ÉVE@x.org, "e\u0301ve@x.org"]}, {email_domain: [exämple.com]}]}`, nil},
		{"allow require stays valid", `{name: p, action: allow, include: [{everyone: true}], require: [{email: [éve@x.org]}]}`, nil},
		{"ASCII in exclude and block", `{name: p, action: block, include: [{email: [EVE@x.org]}], exclude: [{email_domain: [X.org]}]}`, nil},
		{"other selectors may hold non-ASCII", `{name: p, action: block, include: [{group: [Équipe]}], exclude: [{claim: {name: Zoë}}]}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := parseOne(t, tt.give), wantProblems(tt.give, tt.want...); got != want {
				t.Errorf("errors =\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// TestSelectorKinds: SelectorKinds lists every kind once, each with a YAML
// name the parser accepts, so that a test of the decision core walking it
// covers every selector a policy file can hold.
func TestSelectorKinds(t *testing.T) {
	if got, want := len(SelectorKinds), int(numSelectorKinds-SelEveryone); got != want {
		t.Fatalf("len(SelectorKinds) = %d, want %d", got, want)
	}
	values := map[SelectorKind]string{
		SelEveryone: "true", SelAnyServiceToken: "true", SelValidCertificate: "true",
		SelClaim: "{a: b}", SelIP: "[10.0.0.0/8]", SelServiceToken: "[ci-bot]",
		SelEmail: "[a@example.com]", SelEmailDomain: "[example.com]", SelCountry: "[de]",
		SelGroup: "[g]", SelCommonName: "[cn]",
	}
	seen := map[string]bool{}
	for _, k := range SelectorKinds {
		name := k.String()
		if name == "" || strings.HasPrefix(name, "SelectorKind(") || seen[name] {
			t.Errorf("kind %d has name %q (empty or repeated)", int(k), name)
			continue
		}
		seen[name] = true
		v, ok := values[k]
		if !ok {
			t.Errorf("no test value for selector %s", name)
			continue
		}
		src := "client_certificate_authorities: [testdata/valid/certs/ca.pem]\n" +
			strings.Replace(policyFile("      - {name: p, action: allow, include: [{"+name+": "+v+"}]}\n"),
				"applications:", "service_tokens:\n  - {name: ci-bot, client_id: x, client_secret_sha256: "+strings.Repeat("0", 64)+"}\napplications:", 1)
		s, err := Parse("p.yaml", []byte(src))
		if err != nil {
			t.Errorf("selector %s: %v", name, err)
			continue
		}
		if got := s.Applications[0].PostAuth[0].Include[0].Kind; got != k {
			t.Errorf("selector %s parsed as kind %v, want %v", name, got, k)
		}
	}
	if got := SelectorKind(0).String(); got != "SelectorKind(0)" {
		t.Errorf("SelectorKind(0).String() = %q", got)
	}
}
