// Package cfimport turns Cloudflare Access configuration, as its API
// returns it, into an accessgate policy file (`accessgate import
// cloudflare`).
//
// The import never widens access. A rule it cannot map drops the allow,
// bypass or non_identity policy that holds it in an include or a require
// (the policy then grants less: nothing); in an exclude, or anywhere in a
// deny policy, the import fails, since dropping it would let through whom
// Cloudflare turns away. Every setting it does not carry over is named in
// the report, one line each, with the Cloudflare ids.
package cfimport

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/accessgate/accessgate/policies"
)

// Options are the inputs of one import. The JSON inputs are API responses:
// {"result": [...]} envelopes or bare arrays.
type Options struct {
	// TeamDomain is the team domain URL (https://TEAM.cloudflareaccess.com):
	// the issuer, as given; its certs and login URLs are derived from it.
	TeamDomain string
	// Apps are the Access applications (required).
	Apps []byte
	// Groups, Policies and ServiceTokens are optional: the Access groups,
	// the reusable policies and the service tokens the applications refer
	// to. nil means the file was not given.
	Groups, Policies, ServiceTokens []byte
	// ClientCA is the path of a PEM bundle of client certificate
	// authorities, written as client_certificate_authorities ("" for none).
	// Only with it do certificate and common_name rules map.
	ClientCA string
}

// Result is a successful import.
type Result struct {
	// YAML is the policy file; it passes validate as it is.
	YAML []byte
	// Report names every dropped policy and every setting not carried
	// over, one line each.
	Report []string
}

// Error is a failed import: every reason, each naming the Cloudflare ids.
type Error struct {
	Problems []string
	// Report is what the import had to say before it gave up.
	Report []string
}

func (e *Error) Error() string { return strings.Join(e.Problems, "\n") }

// importer holds one import's inputs, output and findings.
type importer struct {
	groups   map[string]*group        // by id; nil without --groups
	reusable map[string]*policy       // by id; nil without --policies
	tokens   map[string]*serviceToken // by id; nil without --service-tokens
	clientCA bool

	tokenNames map[string]string // token id → name in the output
	usedTokens []*serviceToken   // tokens some emitted rule names, in order
	takenNames map[string]bool

	report []string
	fatal  []string

	// orphans are Cloudflare domains this import does not claim, and
	// moved the /x/* domains it claims as /x: checkCoverage makes sure no
	// other imported application picks up their requests.
	orphans []orphan
	moved   []moved
}

// orphan is a domain of a Cloudflare application that the import does not
// carry over.
type orphan struct {
	ref, domain string
}

// moved is a host/x/* domain imported as host/x, which covers /x itself.
type moved struct {
	ref, domain string
	app         *appOut
}

// Import runs one import.
func Import(opts Options) (*Result, error) {
	issuer, err := teamDomain(opts.TeamDomain)
	if err != nil {
		return nil, err
	}
	im := &importer{tokenNames: map[string]string{}, takenNames: map[string]bool{}}
	apps, err := decodeAll(opts.Apps, "--apps", func(a *application, raw rawObject) { a.raw = raw })
	if err != nil {
		return nil, err
	}
	if opts.Groups != nil {
		list, err := decodeAll[group](opts.Groups, "--groups", nil)
		if err != nil {
			return nil, err
		}
		im.groups = map[string]*group{}
		for _, g := range list {
			im.groups[g.ID] = g
		}
	}
	if opts.Policies != nil {
		list, err := decodeAll(opts.Policies, "--policies", func(p *policy, raw rawObject) { p.raw = raw })
		if err != nil {
			return nil, err
		}
		im.reusable = map[string]*policy{}
		for _, p := range list {
			im.reusable[p.ID] = p
		}
	}
	if opts.ServiceTokens != nil {
		list, err := decodeAll[serviceToken](opts.ServiceTokens, "--service-tokens", nil)
		if err != nil {
			return nil, err
		}
		im.tokens = map[string]*serviceToken{}
		for _, t := range list {
			im.tokens[t.ID] = t
		}
	}
	if opts.ClientCA != "" {
		if err := checkPEM(opts.ClientCA); err != nil {
			return nil, err
		}
		im.clientCA = true
	}
	if issuer.trimmed {
		im.reportf("--team-domain: trailing / removed: tokens carry the issuer without it")
	}

	var out []*appOut
	names := map[string]bool{}
	claimed := map[string]string{}
	for _, a := range apps {
		o := im.application(a)
		if o == nil {
			continue
		}
		if names[o.name] {
			o.name = o.name + " (" + a.ID + ")"
			im.reportf("%s: renamed %q, another application has its name", appRef(a), o.name)
		}
		names[o.name] = true
		for _, d := range o.domains {
			key := strings.TrimSuffix(strings.ToLower(d), "/")
			if prev, dup := claimed[key]; dup {
				im.fatalf("%s: domain %s is also claimed by application %q: requests would reach only one of them", appRef(a), d, prev)
			}
			claimed[key] = o.name
		}
		out = append(out, o)
	}
	im.checkCoverage(out)
	if len(im.fatal) > 0 {
		return nil, &Error{Problems: im.fatal, Report: im.report}
	}
	doc := &fileOut{issuer: issuer, clientCA: opts.ClientCA, tokens: im.usedTokens, tokenNames: im.tokenNames, apps: out}
	yml, err := doc.encode()
	if err != nil {
		return nil, err
	}
	// The output must pass validate as it is: check it with the very
	// parser validate uses, so that an input this importer misjudged fails
	// here instead of at deploy time.
	if _, err := policies.Parse("imported.yaml", yml); err != nil {
		return nil, &Error{Problems: []string{"the imported file would not validate:\n" + err.Error()}, Report: im.report}
	}
	return &Result{YAML: yml, Report: im.report}, nil
}

func (im *importer) reportf(format string, args ...any) {
	im.report = append(im.report, fmt.Sprintf(format, args...))
}

func (im *importer) fatalf(format string, args ...any) {
	im.fatal = append(im.fatal, fmt.Sprintf(format, args...))
}

func appRef(a *application) string { return fmt.Sprintf("app %q (id %s)", a.Name, a.ID) }

func policyRef(p *policy) string { return fmt.Sprintf("policy %q (id %s)", p.Name, p.ID) }

// issuerOut is the one issuer every imported application uses.
type issuerOut struct {
	name, url string
	trimmed   bool
}

// teamDomain checks --team-domain: an https URL with a host and nothing
// after it.
func teamDomain(s string) (issuerOut, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return issuerOut{}, fmt.Errorf("--team-domain %q: want the team domain URL, e.g. https://TEAM.cloudflareaccess.com", s)
	}
	out := issuerOut{url: strings.TrimSuffix(s, "/"), trimmed: strings.HasSuffix(s, "/")}
	out.name, _, _ = strings.Cut(u.Hostname(), ".")
	if out.name == "" {
		out.name = "cloudflare"
	}
	return out, nil
}

func checkPEM(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--client-ca: %w", err)
	}
	if !strings.Contains(string(data), "-----BEGIN CERTIFICATE-----") {
		return fmt.Errorf("--client-ca %s: no PEM certificate in it", path)
	}
	return nil
}

// appOut is one application of the output.
type appOut struct {
	name       string
	domains    []string
	audience   string
	unauthDeny bool
	cors       *corsOut
	policies   []*policyOut
	comment    string
}

type corsOut struct {
	bypass                             bool
	origins, methods, headers          []string
	allOrigins, allMethods, allHeaders bool
	credentials                        bool
	maxAge                             *int
}

// policyOut is one policy of the output.
type policyOut struct {
	name, action              string
	include, require, exclude []selector
	comment                   string
}

// application maps one Access application, or returns nil (reported) when
// it cannot be imported at all.
func (im *importer) application(a *application) *appOut {
	ref := appRef(a)
	if a.Type != "" && a.Type != "self_hosted" {
		im.reportf("%s: not imported: type %s (only self_hosted applications are)", ref, a.Type)
		im.orphan(ref, publicDomains(a)...)
		return nil
	}
	if a.AUD == "" {
		im.reportf("%s: not imported: it has no aud", ref)
		im.orphan(ref, publicDomains(a)...)
		return nil
	}
	o := &appOut{name: a.Name, audience: a.AUD}
	if strings.TrimSpace(o.name) == "" {
		o.name = a.ID
	}
	o.comment = fmt.Sprintf("Cloudflare application %s", a.ID)
	im.domains(a, o)
	if len(o.domains) == 0 {
		im.reportf("%s: not imported: none of its domains can be mapped", ref)
		return nil
	}
	im.cors(a, o)
	im.appSettings(a)

	resolved := im.resolvePolicies(a)
	identity := false
	for _, p := range resolved {
		if p.Decision == "allow" || p.Decision == "deny" {
			identity = true
		}
		o.policies = append(o.policies, im.policy(a, p)...)
	}
	// An application with only bypass and non_identity policies never
	// sends Cloudflare users to log in: it answers 403.
	o.unauthDeny = !identity
	if len(o.policies) == 0 {
		// Keep the application, refusing everyone: without it, its
		// requests could reach a less specific application instead.
		im.reportf("%s: none of its policies could be carried over: imported with one block policy for everyone", ref)
		o.policies = []*policyOut{{
			name: "nothing imported", action: "block", include: []selector{{kind: "everyone"}},
			comment: "No Cloudflare policy of this application could be carried over.",
		}}
	}
	return o
}

// publicDomains lists an application's domains as Cloudflare routes them:
// its public destinations, else its self_hosted_domains, else its domain.
func publicDomains(a *application) []string {
	var list []string
	for _, d := range a.Destinations {
		if (d.Type == "public" || d.Type == "") && d.URI != "" {
			list = append(list, d.URI)
		}
	}
	switch {
	case len(list) > 0:
		return list
	case len(a.SelfHostedDomains) > 0:
		return a.SelfHostedDomains
	case a.Domain != "":
		return []string{a.Domain}
	}
	return nil
}

func (im *importer) orphan(ref string, domains ...string) {
	for _, d := range domains {
		im.orphans = append(im.orphans, orphan{ref: ref, domain: d})
	}
}

// domains maps the application's public destinations, else its
// self_hosted_domains, else its domain.
func (im *importer) domains(a *application, o *appOut) {
	ref := appRef(a)
	var list []string
	var private int
	for _, d := range a.Destinations {
		switch d.Type {
		case "public", "":
			if d.URI != "" {
				list = append(list, d.URI)
			}
		default:
			private++
		}
	}
	if private > 0 {
		im.reportf("%s: %d private destination(s) not imported (only public HTTP destinations are)", ref, private)
	}
	switch {
	case len(list) > 0:
		var ignored []string
		for _, d := range a.SelfHostedDomains {
			if !slices.Contains(list, d) {
				ignored = append(ignored, d)
			}
		}
		if len(ignored) > 0 {
			im.reportf("%s: self_hosted_domains %s ignored: destinations win over the deprecated field", ref, strings.Join(ignored, ", "))
		}
	case len(a.SelfHostedDomains) > 0:
		list = a.SelfHostedDomains
	case a.Domain != "":
		list = []string{a.Domain}
	}
	for _, d := range list {
		m, note, err := mapDomain(d)
		if err != nil {
			im.reportf("%s: domain %q not imported: %v", ref, d, err)
			im.orphan(ref, d)
			continue
		}
		if note != "" {
			im.reportf("%s: domain %q imported as %q: %s", ref, d, m, note)
			im.moved = append(im.moved, moved{ref: ref, domain: m, app: o})
		}
		if !slices.Contains(o.domains, m) {
			o.domains = append(o.domains, m)
		}
	}
}

// mapDomain maps a Cloudflare application domain (host[/path], wildcards
// allowed) to an accessgate domain.
func mapDomain(d string) (out, note string, err error) {
	s := strings.TrimSpace(d)
	if strings.Contains(s, "://") {
		return "", "", errors.New("a domain has no scheme")
	}
	host, path, _ := strings.Cut(s, "/")
	host = strings.ToLower(host)
	if path != "" {
		path = "/" + path
	}
	switch {
	case path == "/*" || path == "/":
		path = ""
	case strings.HasSuffix(path, "/*") && !strings.Contains(strings.TrimSuffix(path, "/*"), "*"):
		path = strings.TrimSuffix(path, "/*")
		note = fmt.Sprintf("Cloudflare's %s/* does not cover %s itself; accessgate's prefix does", path, path)
	case strings.Contains(path, "*"):
		return "", "", errors.New("a wildcard inside a path has no accessgate equivalent")
	}
	if strings.Count(host, "*") > 1 || strings.Contains(host, "*") && !strings.HasPrefix(host, "*.") {
		return "", "", errors.New("only a leading *. wildcard (one label) has an accessgate equivalent")
	}
	if strings.Contains(host, ":") {
		return "", "", errors.New("a domain has no port")
	}
	out = host + path
	if err := probeDomain(out); err != nil {
		return "", "", err
	}
	return out, note, nil
}

// probeDomain asks the policy parser whether d is a valid domain, so that
// the import and validate can never disagree.
func probeDomain(d string) error {
	q, _ := json.Marshal(d)
	doc := `issuers: [{name: i, issuer: "https://i.example", jwks_url: "https://i.example/k", login_url: "https://i.example/l"}]
applications: [{name: a, issuer: i, audience: a, domains: [` + string(q) + `], policies: [{name: p, action: allow, include: [{everyone: true}]}]}]`
	_, err := policies.Parse("probe.yaml", []byte(doc))
	var list policies.ErrorList
	if errors.As(err, &list) && len(list) > 0 {
		return errors.New(list[0].Msg)
	}
	return err
}

// cors maps cors_headers and options_preflight_bypass.
func (im *importer) cors(a *application, o *appOut) {
	ref := appRef(a)
	c := a.CORSHeaders
	if a.OptionsPreflightBypass {
		o.cors = &corsOut{bypass: true}
		if !c.empty() {
			im.reportf("%s: cors_headers not imported: options_preflight_bypass sends preflights to the origin, which answers them", ref)
		}
		return
	}
	if c.empty() {
		return
	}
	out := &corsOut{
		allOrigins: c.AllowAllOrigins, allMethods: c.AllowAllMethods, allHeaders: c.AllowAllHeaders,
		credentials: c.AllowCredentials, methods: c.AllowedMethods, headers: c.AllowedHeaders,
	}
	for _, origin := range c.AllowedOrigins {
		switch {
		case origin == "*":
			out.allOrigins = true
		case out.allOrigins && origin != "null":
			// allow_all_origins covers it.
		default:
			out.origins = appendNew(out.origins, strings.TrimSuffix(origin, "/"))
		}
	}
	if out.allOrigins {
		out.origins = slices.DeleteFunc(out.origins, func(s string) bool { return s != "null" })
	}
	if c.MaxAge != nil {
		switch n := *c.MaxAge; {
		case n >= 0 && n <= 86400:
			out.maxAge = c.MaxAge
		default:
			im.reportf("%s: cors_headers.max_age %d not carried over (browsers use their own default)", ref, n)
		}
	}
	o.cors = out
}

// appKeys are the application keys the import maps or that describe the
// object rather than configure it.
var appKeys = map[string]bool{
	"id": true, "uid": true, "name": true, "aud": true, "type": true, "domain": true, "domain_type": true,
	"destinations": true, "self_hosted_domains": true, "cors_headers": true, "options_preflight_bypass": true,
	"policies": true, "created_at": true, "updated_at": true,
}

// appDefaults are Cloudflare's defaults for settings whose default is not
// the JSON zero value.
var appDefaults = map[string]string{
	"session_duration":           `"24h"`,
	"http_only_cookie_attribute": `true`,
	"app_launcher_visible":       `true`,
}

// appSettings reports every other application setting that is not at its
// default.
func (im *importer) appSettings(a *application) {
	for _, k := range slices.Sorted(mapKeys(a.raw)) {
		if appKeys[k] {
			continue
		}
		if v := a.raw[k]; !isDefault(v, appDefaults[k]) {
			im.reportf("%s: setting %s = %s not carried over", appRef(a), k, compact(v))
		}
	}
}

// policyKeys are the policy keys the import maps or that describe it.
var policyKeys = map[string]bool{
	"id": true, "uid": true, "name": true, "decision": true, "precedence": true, "reusable": true,
	"include": true, "require": true, "exclude": true, "created_at": true, "updated_at": true,
	"app_count": true, "approval_required": true, "purpose_justification_required": true, "isolation_required": true,
}

func (im *importer) policySettings(a *application, p *policy) {
	for _, k := range slices.Sorted(mapKeys(p.raw)) {
		if policyKeys[k] {
			continue
		}
		if v := p.raw[k]; !isDefault(v, "") {
			im.reportf("%s: %s: setting %s = %s not carried over", appRef(a), policyRef(p), k, compact(v))
		}
	}
}

func mapKeys(m rawObject) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// isDefault reports whether v is Cloudflare's default: def when given,
// else the JSON zero value (null, false, 0, "", [], {}).
func isDefault(v json.RawMessage, def string) bool {
	c := compact(v)
	if def != "" {
		return c == def || c == "null"
	}
	switch c {
	case "null", "false", "0", `""`, "[]", "{}":
		return true
	}
	return false
}

func compact(v json.RawMessage) string {
	var b strings.Builder
	var x any
	if err := json.Unmarshal(v, &x); err != nil {
		return string(v)
	}
	out, _ := json.Marshal(x)
	b.Write(out)
	return b.String()
}

// resolvePolicies returns the application's policies in precedence order:
// full objects as they are, references looked up among the reusable
// policies. A reference that cannot be resolved fails the import: a
// missing deny policy would widen access.
func (im *importer) resolvePolicies(a *application) []*policy {
	type entry struct {
		p     *policy
		index int
	}
	var list []entry
	allPrec := true
	for i, raw := range a.Policies {
		p, ok := im.resolvePolicy(a, raw)
		if !ok {
			continue
		}
		if p.Precedence == nil {
			allPrec = false
		}
		list = append(list, entry{p, i})
	}
	if allPrec {
		slices.SortStableFunc(list, func(x, y entry) int { return cmp.Compare(*x.p.Precedence, *y.p.Precedence) })
	}
	out := make([]*policy, 0, len(list))
	for _, e := range list {
		out = append(out, e.p)
	}
	return out
}

func (im *importer) resolvePolicy(a *application, raw json.RawMessage) (*policy, bool) {
	var id string
	if err := json.Unmarshal(raw, &id); err == nil {
		return im.reusableByID(a, id, nil)
	}
	p := &policy{}
	if err := json.Unmarshal(raw, p); err != nil {
		im.fatalf("%s: a policy entry cannot be read: %v", appRef(a), err)
		return nil, false
	}
	if p.Decision == "" {
		return im.reusableByID(a, p.ID, p.Precedence)
	}
	if err := json.Unmarshal(raw, &p.raw); err != nil {
		im.fatalf("%s: %s cannot be read: %v", appRef(a), policyRef(p), err)
		return nil, false
	}
	return p, true
}

func (im *importer) reusableByID(a *application, id string, prec *int) (*policy, bool) {
	p := im.reusable[id]
	if p == nil {
		what := "--policies is not given"
		if im.reusable != nil {
			what = "--policies does not hold it"
		}
		im.fatalf("%s: refers to policy %s, but %s: a missing deny policy would widen access", appRef(a), id, what)
		return nil, false
	}
	if prec != nil {
		c := *p
		c.Precedence = prec
		p = &c
	}
	return p, true
}

// positions of a rule in a policy.
const (
	inInclude = "include"
	inRequire = "require"
	inExclude = "exclude"
)

// policy maps one Cloudflare policy to zero, one or two accessgate
// policies.
func (im *importer) policy(a *application, p *policy) []*policyOut {
	ref := fmt.Sprintf("%s: %s", appRef(a), policyRef(p))
	grants := true
	switch p.Decision {
	case "allow", "bypass", "non_identity":
	case "deny":
		grants = false
	default:
		im.fatalf("%s: unknown decision %q: a deny policy misread would widen access", ref, p.Decision)
		return nil
	}
	if grants {
		for _, f := range []struct {
			on   bool
			name string
		}{{p.ApprovalRequired, "approval_required"}, {p.PurposeJustificationRequired, "purpose_justification_required"}, {p.IsolationRequired, "isolation_required"}} {
			if f.on {
				im.reportf("%s dropped: %s is set, and keeping the policy would grant access without it", ref, f.name)
				return nil
			}
		}
	}

	var include, exclude []selector
	var require []selector
	type miss struct {
		where string
		u     *unmappable
	}
	var misses []miss
	for _, r := range p.Include {
		sels, u := im.mapRule(r, 0)
		if u != nil {
			misses = append(misses, miss{inInclude, u})
			continue
		}
		include = append(include, sels...)
	}
	for _, r := range p.Require {
		sel, u := im.mapRequire(r)
		if u != nil {
			misses = append(misses, miss{inRequire, u})
			continue
		}
		require = append(require, sel)
	}
	for _, r := range p.Exclude {
		sels, u := im.mapRule(r, 0)
		if u != nil {
			misses = append(misses, miss{inExclude, u})
			continue
		}
		exclude = append(exclude, sels...)
	}

	// Values that only fold A-Z must not sit where a miss fails open
	// (contract §2): an exclude, or anywhere in a block.
	check := func(where string, sels []selector) {
		for _, s := range sels {
			if s.kind != "email" && s.kind != "email_domain" {
				continue
			}
			for _, v := range s.values {
				if !isASCII(v) {
					misses = append(misses, miss{where, &unmappable{rule: s.kind, why: fmt.Sprintf("%q holds a non-ASCII character, which would be compared byte for byte", v)}})
				}
			}
		}
	}
	check(inExclude, exclude)
	if !grants {
		check(inInclude, include)
		check(inRequire, require)
	}

	// bypass and service_auth run before any token is read: a selector
	// that reads the token is a rule the import cannot map there.
	tokenFree := p.Decision == "bypass" || p.Decision == "non_identity"
	if tokenFree {
		for _, pos := range []struct {
			where string
			sels  []selector
		}{{inInclude, include}, {inRequire, require}, {inExclude, exclude}} {
			for _, s := range pos.sels {
				if identityKinds[s.kind] {
					misses = append(misses, miss{pos.where, &unmappable{rule: s.kind, why: "it reads the Access token, which a " + p.Decision + " policy never sees"}})
				}
			}
		}
	}

	failed := false
	for _, m := range misses {
		if !grants || m.where == inExclude {
			im.fatalf("%s: %s rule %s: dropping it would widen access", ref, m.where, m.u)
			failed = true
		}
	}
	if failed {
		return nil
	}
	if len(misses) > 0 {
		im.reportf("%s dropped: %s rule %s", ref, misses[0].where, misses[0].u)
		return nil
	}
	include, exclude = mergeList(include), mergeList(exclude)
	if len(include) == 0 {
		im.reportf("%s dropped: its include matches nobody", ref)
		return nil
	}

	comment := fmt.Sprintf("Cloudflare policy %s (%s", p.ID, p.Decision)
	if p.Precedence != nil {
		comment += fmt.Sprintf(", precedence %d", *p.Precedence)
	}
	if p.Reusable {
		comment += ", reusable"
	}
	comment += ")"
	name := p.Name
	if strings.TrimSpace(name) == "" {
		name = p.ID
	}
	// Settings are reported for the policies that are kept: a dropped
	// policy's line already says it is gone.
	im.policySettings(a, p)
	out := &policyOut{name: name, include: include, require: require, exclude: exclude, comment: comment}
	switch p.Decision {
	case "allow":
		out.action = "allow"
	case "deny":
		out.action = "block"
	case "bypass":
		out.action = "bypass"
	case "non_identity":
		return im.nonIdentity(out)
	}
	im.noteTokens(out)
	return []*policyOut{out}
}

// nonIdentity places a Cloudflare Service Auth policy: with service-token
// rules it is a service_auth policy; with only ip, certificate and
// common_name rules (or everyone) no identity is involved and it is a
// bypass; an include that mixes both becomes one of each, the two together
// granting what the one did.
func (im *importer) nonIdentity(p *policyOut) []*policyOut {
	var svc, other []selector
	for _, s := range p.include {
		if serviceKinds[s.kind] {
			svc = append(svc, s)
		} else {
			other = append(other, s)
		}
	}
	anySvc := len(svc) > 0
	for _, s := range append(slices.Clone(p.require), p.exclude...) {
		anySvc = anySvc || serviceKinds[s.kind]
	}
	var out []*policyOut
	switch {
	case len(svc) > 0 && len(other) > 0:
		a, b := *p, *p
		a.name, a.action, a.include = p.name+" (service token)", "service_auth", svc
		b.name, b.action, b.include = p.name+" (no identity)", "bypass", other
		a.comment += ": its service-token rules"
		b.comment += ": its other rules"
		out = []*policyOut{&a, &b}
	case anySvc:
		p.action = "service_auth"
		out = []*policyOut{p}
	default:
		p.action = "bypass"
		out = []*policyOut{p}
	}
	for _, o := range out {
		im.noteTokens(o)
	}
	return out
}

// noteTokens records the service tokens an emitted policy names, so that
// only those are written.
func (im *importer) noteTokens(p *policyOut) {
	for _, list := range [][]selector{p.include, p.require, p.exclude} {
		for _, s := range list {
			if s.kind != "service_token" {
				continue
			}
			for _, name := range s.values {
				for _, t := range im.tokens {
					if im.tokenNames[t.ID] == name && !slices.Contains(im.usedTokens, t) {
						im.usedTokens = append(im.usedTokens, t)
						im.reportf("service token %q (id %s): client_secret_sha256 set to 64 zeros (Cloudflare never exports secrets); write the SHA-256 of its secret, or it never succeeds", name, t.ID)
					}
				}
			}
		}
	}
}

// tokenName is the output name of a service token: its Cloudflare name,
// made unique.
func (im *importer) tokenName(t *serviceToken) string {
	if n, ok := im.tokenNames[t.ID]; ok {
		return n
	}
	n := strings.TrimSpace(t.Name)
	if n == "" {
		n = t.ID
	}
	if im.takenNames[n] {
		n += " (" + t.ID + ")"
	}
	im.takenNames[n] = true
	im.tokenNames[t.ID] = n
	return n
}

// checkCoverage fails the import where a request Cloudflare routes to one
// application would reach another, less specific one here: a domain that
// is not carried over (its application skipped, or a wildcard with no
// accessgate equivalent), and the /x that a host/x/* domain now covers
// although Cloudflare leaves it to a less specific application. Either
// would put those requests under policies that Cloudflare does not apply
// to them.
func (im *importer) checkCoverage(apps []*appOut) {
	for _, o := range im.orphans {
		for _, a := range apps {
			for _, d := range a.domains {
				if mayCatch(d, o.domain) {
					im.fatalf("%s: domain %q is not imported, and its requests would reach application %q (domain %s) instead", o.ref, o.domain, a.name, d)
				}
			}
		}
	}
	for _, m := range im.moved {
		host, path := splitDomain(m.domain)
		for _, a := range apps {
			if a == m.app {
				continue
			}
			for _, d := range a.domains {
				if dh, _ := splitDomain(d); (strings.HasPrefix(host, "*.") && dh == host || !strings.HasPrefix(host, "*.")) && covers(d, host, path) {
					im.fatalf("%s: domain %s covers %s itself, which Cloudflare leaves to application %q (domain %s): %s would get this application's policies instead", m.ref, m.domain, path, a.name, d, path)
				}
			}
		}
	}
}

func splitDomain(d string) (host, path string) {
	host, path, _ = strings.Cut(d, "/")
	if path != "" || strings.HasSuffix(d, "/") {
		path = "/" + path
	}
	return strings.ToLower(host), path
}

// covers reports whether accessgate domain d covers a request for host
// and path (letter case ignored, as is safe for this check).
func covers(d, host, path string) bool {
	dh, dp := splitDomain(d)
	if base, ok := strings.CutPrefix(dh, "*."); ok {
		i := strings.IndexByte(host, '.')
		if host != dh && (i <= 0 || host[i+1:] != base) {
			return false
		}
	} else if dh != host {
		return false
	}
	return prefixCovers(dp, path)
}

// prefixCovers reports whether the path prefix p covers path, on segment
// boundaries.
func prefixCovers(p, path string) bool {
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return true
	}
	return len(path) >= len(p) && strings.EqualFold(path[:len(p)], p) && (len(path) == len(p) || path[len(p)] == '/')
}

// mayCatch reports, erring on the side of yes, whether the imported domain
// d covers some request that the Cloudflare domain cf (wildcards anywhere)
// would have claimed, without being more specific than cf; Cloudflare
// routes requests that both claim to the more specific application, as
// accessgate does.
func mayCatch(d, cf string) bool {
	host, path := splitDomain(strings.TrimSpace(cf))
	literal := path
	if i := strings.IndexByte(literal, '*'); i >= 0 {
		literal = literal[:i]
	}
	dh, dp := splitDomain(d)
	if i := strings.LastIndexByte(host, '*'); i >= 0 {
		// A wildcard host: only a wildcard domain here is less specific.
		base, ok := strings.CutPrefix(dh, "*.")
		if !ok || !strings.HasSuffix(host[i+1:], base) {
			return false
		}
	} else if !covers(dh, host, "/") {
		return false
	}
	dp = strings.TrimSuffix(dp, "/")
	if dp == "" {
		return true
	}
	// literal may end inside a segment (/fo from /fo*): dp catches it when
	// it is a whole-segment prefix of the literal part.
	return prefixCovers(dp, literal) || strings.EqualFold(strings.TrimSuffix(literal, "/"), dp)
}
