package policytest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/accessgate/accessgate/authz"
	"github.com/accessgate/accessgate/policies"
)

// mintKID is the kid of the throwaway key minted tokens carry.
const mintKID = "accessgate-policytest"

// Runner decides tests against one policy Set. Tokens are minted with a
// throwaway ES256 key that stands in for every issuer's keys, so no key set
// is read or fetched; a token in a test's own headers that this key did not
// sign fails as it would against the real issuer.
type Runner struct {
	set    *policies.Set
	key    jwk.Key // private, signs minted tokens
	keys   keySource
	engine *authz.Engine
	now    func() time.Time
}

// keySource answers every issuer with the throwaway public key.
type keySource struct{ pub jwk.Key }

func (k keySource) Key(_ context.Context, _ *policies.Issuer, kid string) (jwk.Key, error) {
	if kid != mintKID {
		return nil, fmt.Errorf("kid %q: tests sign with the runner's key only", kid)
	}
	return k.pub, nil
}

// New returns a Runner for set with a fresh throwaway key.
func New(set *policies.Set) (*Runner, error) {
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate test key: %w", err)
	}
	key, err := jwk.FromRaw(raw)
	if err != nil {
		return nil, err
	}
	for k, v := range map[string]any{jwk.KeyIDKey: mintKID, jwk.AlgorithmKey: jwa.ES256} {
		if err := key.Set(k, v); err != nil {
			return nil, err
		}
	}
	pub, err := key.PublicKey()
	if err != nil {
		return nil, err
	}
	r := &Runner{set: set, key: key, keys: keySource{pub: pub}, now: time.Now}
	r.engine = authz.New(r.keys, authz.WithClock(r.now))
	r.engine.Swap(set)
	return r, nil
}

// Result is the outcome of one test.
type Result struct {
	Name string
	// Diffs are the differing fields, each "field: want X, got Y"; none
	// means the test passed.
	Diffs []string
	// Got is the decision as check prints it.
	Got Output
}

// Passed reports whether every expected field matched.
func (res *Result) Passed() bool { return len(res.Diffs) == 0 }

// Run decides t's request and compares the decision with t.Expect.
func (r *Runner) Run(ctx context.Context, t *Test) (Result, error) {
	res := Result{Name: t.Name}
	req, err := t.Request.Authz()
	if err != nil {
		return res, err
	}
	engine := r.engine
	if t.Identity != nil {
		if err := r.mint(req, t.Identity); err != nil {
			return res, err
		}
	}
	if t.ServiceToken != "" {
		engine, err = r.presentServiceToken(req, t.ServiceToken)
		if err != nil {
			return res, err
		}
	}
	d := engine.Decide(ctx, req)
	res.Got = Explain(&d)
	res.Diffs = compare(&t.Expect, &res.Got)
	return res, nil
}

// mint signs a token for the application the request goes to and sends it
// as the first CF_Authorization cookie. A request no application covers
// gets no token: its decision never reads one.
func (r *Runner) mint(req *authz.Request, id *Identity) error {
	app := r.application(req)
	if app == nil || app.Issuer == nil {
		return nil
	}
	now := r.now()
	claims := map[string]any{
		"iss":  app.Issuer.Issuer,
		"aud":  []string{app.Audience},
		"sub":  "policytest",
		"iat":  now.Add(-time.Minute).Unix(),
		"nbf":  now.Add(-time.Minute).Unix(),
		"exp":  now.Add(time.Hour).Unix(),
		"type": "app",
	}
	if id.Expired {
		exp := now.Add(-time.Hour - app.Issuer.Leeway)
		claims["exp"] = exp.Unix()
		claims["iat"] = exp.Add(-time.Hour).Unix()
		claims["nbf"] = exp.Add(-time.Hour).Unix()
	}
	if id.Issuer != nil {
		claims["iss"] = *id.Issuer
	}
	if id.Audience != nil {
		claims["aud"] = id.Audience
	}
	maps.Copy(claims, id.Claims)
	payload, err := json.Marshal(claims)
	if err != nil {
		return fmt.Errorf("identity claims: %w", err)
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.TypeKey, "JWT"); err != nil {
		return err
	}
	if err := hdr.Set(jws.KeyIDKey, mintKID); err != nil {
		return err
	}
	tok, err := jws.Sign(payload, jws.WithKey(jwa.ES256, r.key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return fmt.Errorf("sign test token: %w", err)
	}
	cookie := "CF_Authorization=" + string(tok)
	if old := req.Headers["cookie"]; old != "" {
		cookie += "; " + old
	}
	req.Headers["cookie"] = cookie
	return nil
}

// application finds the application a request goes to, for a well-formed
// request (the decision core refuses the others before it reads a token).
func (r *Runner) application(req *authz.Request) *policies.Application {
	if req.ApplicationBound {
		return r.set.ApplicationNamed(req.Application)
	}
	path, ok := authz.NormalizePath(req.Path)
	if !ok {
		return nil
	}
	host := strings.ToLower(req.Host)
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	return r.set.Lookup(host, path)
}

// presentServiceToken adds the token's headers with a throwaway secret and
// returns an engine over a copy of the Set in which that secret is the
// token's: the real secret is never needed, and everything else about the
// token (its name, client_id, expiry) is as the policy file says.
func (r *Runner) presentServiceToken(req *authz.Request, name string) (*authz.Engine, error) {
	tok := tokenByName(r.set, name)
	if tok == nil {
		return nil, fmt.Errorf("unknown service token %q", name)
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return nil, err
	}
	secret := hex.EncodeToString(buf)
	stand := *tok
	stand.SecretSHA256 = sha256.Sum256([]byte(secret))
	set := *r.set // a shallow copy: the Set is immutable, only the token map changes
	set.ServiceTokens = maps.Clone(r.set.ServiceTokens)
	set.ServiceTokens[tok.ClientID] = &stand
	e := authz.New(r.keys, authz.WithClock(r.now))
	e.Swap(&set)
	req.Headers["cf-access-client-id"] = tok.ClientID
	req.Headers["cf-access-client-secret"] = secret
	return e, nil
}

// compare lists every expected field that differs from got, in the order
// check prints them.
func compare(want *Expect, got *Output) []string {
	var diffs []string
	str := func(field string, w *string, g string) {
		if w != nil && *w != g {
			diffs = append(diffs, fmt.Sprintf("%s: want %s, got %s", field, text(*w), text(g)))
		}
	}
	str("application", want.Application, got.Application)
	str("policy", want.Policy, got.Policy)
	str("rule", want.Rule, got.Rule)
	str("reason", want.Reason, string(got.Reason))
	if want.Status != nil && *want.Status != got.Status {
		diffs = append(diffs, fmt.Sprintf("status: want %d, got %d", *want.Status, got.Status))
	}
	diffs = append(diffs, headerDiffs("headers", want.Headers, got.Headers)...)
	if want.HasHeadersToRemove {
		w, g := sortedSet(want.HeadersToRemove), sortedSet(got.HeadersToRemove)
		if !slices.Equal(w, g) {
			diffs = append(diffs, fmt.Sprintf("headers_to_remove: want %s, got %s", jsonText(w), jsonText(g)))
		}
	}
	diffs = append(diffs, headerDiffs("response_headers", want.ResponseHeaders, got.ResponseHeaders)...)
	switch {
	case want.Body != nil:
		str("body", want.Body, got.Body)
	case want.BodyJSON != nil:
		var body any
		if err := json.Unmarshal([]byte(got.Body), &body); err != nil || !subset(want.BodyJSON, body) {
			diffs = append(diffs, fmt.Sprintf("body: want %s, got %s", jsonText(want.BodyJSON), text(got.Body)))
		}
	}
	return diffs
}

func headerDiffs(field string, want map[string]*string, got map[string]string) []string {
	var diffs []string
	for _, name := range slices.Sorted(maps.Keys(want)) {
		w := want[name]
		g, present := got[name]
		switch {
		case w == nil && present:
			diffs = append(diffs, fmt.Sprintf("%s.%s: want %s, got %s", field, name, absent, text(g)))
		case w != nil && !present:
			diffs = append(diffs, fmt.Sprintf("%s.%s: want %s, got %s", field, name, text(*w), absent))
		case w != nil && *w != g:
			diffs = append(diffs, fmt.Sprintf("%s.%s: want %s, got %s", field, name, text(*w), text(g)))
		}
	}
	return diffs
}

// subset reports whether want is contained in got: every key of a wanted
// object is in got's with a value that contains it; anything else compares
// whole.
func subset(want, got any) bool {
	wm, ok := want.(map[string]any)
	if !ok {
		return reflect.DeepEqual(want, got)
	}
	gm, ok := got.(map[string]any)
	if !ok {
		return false
	}
	for k, wv := range wm {
		gv, ok := gm[k]
		if !ok || !subset(wv, gv) {
			return false
		}
	}
	return true
}

// absent stands for a header that is not there.
const absent = "(absent)"

// text shows a value as it is, "" when empty and quoted when it has
// surrounding space or a line break, so that every difference is visible
// on one line.
func text(s string) string {
	if s == "" || strings.TrimSpace(s) != s || strings.ContainsAny(s, "\n\r") {
		return strconv.Quote(s)
	}
	return s
}

func sortedSet(l []string) []string {
	out := make([]string, 0, len(l))
	for _, s := range l {
		out = append(out, strings.ToLower(s))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
