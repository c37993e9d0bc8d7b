// Package policies loads, validates and compiles the accessgate policy file
// into an immutable Set that the decision core reads without locks.
//
// All the work happens once, in Load/Compile: hosts are indexed, CIDRs parsed
// to netip.Prefix, e-mail and domain lists lower-cased into sets, origins
// parsed, login_url templates split, and the CORS answer headers of every
// application joined. The hot path only looks things up.
package policies

import (
	"crypto/x509"
	"net/netip"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Set is one compiled, validated policy file. It is never modified after
// Compile returns, so any number of goroutines may read it.
type Set struct {
	// File is the path the set was loaded from, as given.
	File string
	// files are the files read besides the policy file (see Files).
	files []string
	// DefaultAllow is true for `default_action: allow`.
	DefaultAllow bool
	// TrustedProxies are the `trusted_proxies` CIDRs (may be empty).
	TrustedProxies []netip.Prefix
	// Issuers in file order.
	Issuers []*Issuer
	// ServiceTokens by client_id.
	ServiceTokens map[string]*ServiceToken
	// Applications in file order.
	Applications []*Application
	// ClientCAs are the client_certificate_authorities certificates (nil
	// when none are configured).
	ClientCAs *x509.CertPool
	// Login is the `login` section (§8), nil without one.
	Login *Login
	// RequireApplicationBinding is `require_application_binding`: a
	// request the gateway did not bind to an application is refused.
	RequireApplicationBinding bool
	// RevocationsFile is `revocations_file` resolved against the policy
	// file's folder ("" when none); Revocations is its content as read at
	// load (nil when none).
	RevocationsFile string
	Revocations     *Revocations

	hosts  hostIndex
	byName map[string]*Application
}

// Issuer is a compiled `issuers` entry.
type Issuer struct {
	Name        string
	Issuer      string // the token's `iss` must equal this
	JWKSURL     string // exactly one of JWKSURL and JWKSFile is set
	JWKSFile    string // resolved against the policy file's folder
	JWKSRefresh time.Duration
	Leeway      time.Duration
	LoginURL    *LoginTemplate
	// FileKeys is the key set read from JWKSFile at load (nil for JWKSURL).
	FileKeys jwk.Set
}

// ServiceToken is a compiled `service_tokens` entry.
type ServiceToken struct {
	Name         string
	ClientID     string
	SecretSHA256 [32]byte
	Expires      time.Time // zero: never
}

// Unauthenticated says what a browser navigation without a valid token gets.
type Unauthenticated int

const (
	// UnauthRedirect sends the browser to the issuer's login_url (302).
	UnauthRedirect Unauthenticated = iota + 1
	// UnauthDeny answers 401 like an API call.
	UnauthDeny
)

// Application is a compiled `applications` entry.
type Application struct {
	Name string
	// Domains are the application's `domains`, normalized (lower-case
	// host, path without trailing slash), in file order.
	Domains         []string
	Issuer          *Issuer
	Audience        string
	Unauthenticated Unauthenticated
	CORS            *CORS // nil when the application has no `cors`
	IdentityHeaders bool
	// CaseSensitivePaths is `case_sensitive_paths`: path prefixes compare
	// exactly instead of ASCII case-insensitively.
	CaseSensitivePaths bool
	// PreAuth holds the bypass and service_auth policies in file order;
	// PostAuth the block and allow policies in file order.
	PreAuth  []*Policy
	PostAuth []*Policy
	// WWWAuthenticate is the precomputed `Bearer realm="<name>"` value.
	WWWAuthenticate string
	// Login holds the §8 keys (session_duration, cookie,
	// allowed_providers); nil when the application sets none.
	Login *AppLogin

	// hostDomains are the parsed domains, for CoversHost.
	hostDomains []domain
}

// Action is a policy's action.
type Action int

const (
	ActionBypass Action = iota + 1
	ActionServiceAuth
	ActionBlock
	ActionAllow
)

// Policy is a compiled policy of an application.
type Policy struct {
	Name   string
	Action Action
	// Paths are normalized path prefixes matched on segment boundaries;
	// empty means every path.
	Paths   []string
	Include []*Selector
	Require []*Selector
	Exclude []*Selector
}

// SelectorKind says which field of a Selector is in use.
type SelectorKind int

const (
	SelEveryone SelectorKind = iota + 1
	SelEmail
	SelEmailDomain
	SelGroup
	SelClaim
	SelIP
	SelCountry
	SelServiceToken
	SelAnyServiceToken
	SelValidCertificate
	// SelCommonName is `common_name`: valid_certificate holds and the
	// leaf's subject common name is in Set (exact).
	SelCommonName

	// numSelectorKinds sizes the name table: a kind added above without a
	// name fails TestSelectorKinds.
	numSelectorKinds
)

// Selector is one compiled include/require/exclude rule. Only the fields of
// its Kind are set.
type Selector struct {
	Kind SelectorKind
	// Set holds the lower-cased values for email, email_domain and country,
	// the exact values for group, the token names for service_token, and
	// the exact common names for common_name.
	Set map[string]struct{}
	// CIDRs for ip.
	CIDRs []netip.Prefix
	// ClaimPath is the dotted claim name split on '.'; ClaimValue is a
	// string, bool or float64 (YAML numbers are compared as float64, as JSON
	// claims decode).
	ClaimPath  []string
	ClaimValue any
	// Rule names the selector by its place in its policy, as the audit
	// log and `check` print it: "include[0].email_domain",
	// "exclude[1].email", "require[0].ip".
	Rule string
}

// CORS is an application's compiled CORS settings with its answer headers
// precomputed.
type CORS struct {
	// BypassOptionsToOrigin forwards preflights unchecked; when set, no other
	// field is.
	BypassOptionsToOrigin bool

	AllowAllOrigins     bool
	AllowAllMethods     bool
	AllowAllHeaders     bool
	AllowCredentials    bool
	AllowPrivateNetwork bool

	// Methods allowed (case-sensitive); Headers allowed (lower-cased).
	Methods map[string]struct{}
	Headers map[string]struct{}

	// Precomputed header values: the configured lists joined with ", ".
	AllowMethodsValue  string
	AllowHeadersValue  string
	ExposeHeadersValue string // "" when no expose_headers
	MaxAgeValue        string // "" when no max_age: no header is sent

	origins originMatcher
}
