package policies

import (
	"encoding/json"
)

// This file describes the policy file as a JSON Schema (draft 2020-12) for
// editors: `accessgate schema` prints it, and the YAML language server
// completes and checks a file that names it.
//
// Adding a key to the parser means adding it here too, in the object of
// the mapping that holds it (schemaObjects): TestSchemaMatchesParser reads
// the parser's source and fails, naming the key, when the two differ.

// schemaObjects are the mappings of the policy file: each object's
// properties are exactly the keys the parser accepts in the mapping that
// parserObjects names.
var schemaObjects = map[string]object{
	"policy_file": {
		desc: "An accessgate policy file.",
		props: props{
			"default_action": enum("What requests for hosts that no application covers get.", "deny", "deny", "allow"),
			"trusted_proxies": list("Proxies (CIDRs or addresses) whose X-Forwarded-For entries are believed when finding the client address for ip selectors.",
				str("A CIDR such as 10.0.0.0/8, or a single address.")),
			"issuers":        list("Identity issuers whose Access tokens applications accept.", ref("issuer")),
			"service_tokens": list("Service tokens (Cf-Access-Client-Id / Cf-Access-Client-Secret) that service_token selectors name.", ref("service_token")),
			"applications":   list("Protected applications: hosts and paths with their policies.", ref("application")),
			"client_certificate_authorities": nonEmptyList("PEM bundles (relative to the policy file's folder) of the certificate authorities that valid_certificate and common_name check client certificates against.",
				str("A PEM file of CA certificates.")),
			"login":                       ref("login"),
			"require_application_binding": boolean("Refuse (403 no_application) every request the gateway did not bind to an application by name (Envoy context_extensions accessgate-application, or the X-Accessgate-Application fact header).", false),
			"revocations_file":            str("YAML file (relative to the policy file's folder) of revoked sessions: revoked: [{email, before}, {sub, before}]; watched and reloaded like the policy file."),
		},
	},
	"login": {
		desc:     "Built-in sign-in: accessgate as its own Access team domain, signing users in at OpenID Connect providers.",
		required: []string{"team_domain", "signing_key_files", "cookie_secret_file", "providers"},
		props: props{
			"team_domain":        format(str("Origin of the sign-in (https://auth.example.com): the issuer of the tokens it mints, used by applications as issuer: login."), "uri"),
			"signing_key_files":  nonEmptyList("PEM private keys (ES256 or RS256, see accessgate keygen) relative to the policy file's folder; the first signs, every one verifies.", str("A PEM private key file.")),
			"cookie_secret_file": str("File (relative to the policy file's folder) holding at least 32 secret bytes that protect the sign-in's cookies."),
			"session_duration":   withDefault(duration("Lifetime of the sign-in session and of the tokens it mints, unless an application sets its own; positive."), "24h"),
			"providers":          nonEmptyList("OpenID Connect identity providers users sign in at.", ref("provider")),
		},
	},
	"provider": {
		desc:     "An OpenID Connect identity provider.",
		required: []string{"name", "issuer", "client_id"},
		props: props{
			"name":                   str("Name that allowed_providers uses."),
			"type":                   enum("Provider protocol.", "oidc", "oidc"),
			"issuer":                 format(str("The provider's issuer URL (https, or http to a loopback address); its discovery document is read from it."), "uri"),
			"client_id":              scalar("The OAuth client id registered at the provider."),
			"client_secret_file":     str("File (relative to the policy file's folder) holding the OAuth client secret."),
			"scopes":                 withDefault(list("Scopes asked for; must include openid.", str("A scope.")), []string{"openid", "email", "profile"}),
			"groups_claim":           str("The ID token or userinfo claim that carries the user's groups."),
			"require_verified_email": boolean("Refuse users whose provider does not say their email is verified.", true),
		},
	},
	"cookie": {
		desc: "Attributes of the CF_Authorization cookie the built-in sign-in sets for this application.",
		props: props{
			"same_site": enum("SameSite attribute (strict is refused: the browser would loop on sign-in).", "lax", "lax", "none"),
			"http_only": boolean("HttpOnly attribute.", true),
		},
	},
	"issuer": {
		desc:     "An issuer of Access tokens.",
		required: []string{"name", "issuer", "login_url"},
		// Exactly one key source.
		extra: map[string]any{"oneOf": []any{
			map[string]any{"required": []string{"jwks_url"}},
			map[string]any{"required": []string{"jwks_file"}},
		}},
		props: props{
			"name":         str("Name that applications use to refer to this issuer."),
			"issuer":       str("The token's iss claim must equal this."),
			"jwks_url":     format(str("URL of the issuer's key set (https, or http to a loopback address). Exactly one of jwks_url and jwks_file."), "uri"),
			"jwks_file":    str("Key set file, relative to the policy file's folder. Exactly one of jwks_url and jwks_file."),
			"jwks_refresh": withDefault(duration("How often the key set is fetched again (at least 10s); an unknown kid also triggers a rate-limited refresh."), "1h"),
			"login_url":    str("Login page for browsers without a valid token; {host}, {aud} and {redirect} are filled in, query-escaped."),
			"leeway":       withDefault(duration("Clock skew allowed on exp, nbf and iat (0s to 5m)."), "30s"),
		},
	},
	"service_token": {
		desc:     "A service token: a client id and the SHA-256 of its secret.",
		required: []string{"name", "client_id", "client_secret_sha256"},
		props: props{
			"name":                 str("Name that service_token selectors use."),
			"client_id":            scalar("The Cf-Access-Client-Id value."),
			"client_secret_sha256": pattern(str("Hex SHA-256 of the client secret (64 hex digits)."), "^[0-9A-Fa-f]{64}$"),
			"expires":              format(str("When the token stops working (RFC 3339, e.g. 2027-06-30T00:00:00Z); optional."), "date-time"),
		},
	},
	"application": {
		desc:     "A protected application.",
		required: []string{"name", "domains", "issuer", "audience", "policies"},
		props: props{
			"name":                 str("Application name, used in answers, logs and metrics."),
			"domains":              nonEmptyList("Hosts with an optional leading *. wildcard (one label) and an optional path prefix, e.g. api.example.com/v1.", str("host[/path]")),
			"issuer":               str("Name of the issuer (in issuers) whose tokens this application accepts."),
			"audience":             scalar("The token's aud must contain this (the application's AUD tag)."),
			"unauthenticated":      enum("What a browser navigation without a valid token gets: a redirect to login_url, or 401.", "redirect", "redirect", "deny"),
			"cors":                 ref("cors"),
			"identity_headers":     boolean("Set Cf-Access-Authenticated-User-Email and Cf-Access-Jwt-Assertion on forwarded requests.", true),
			"policies":             nonEmptyList("Policies: bypass and service_auth first, in file order; then block and allow, in file order; the first match decides.", ref("policy")),
			"case_sensitive_paths": boolean("Compare path prefixes (domains and policy paths) byte for byte; by default they compare ASCII case-insensitively.", false),
			"session_duration":     duration("Built-in sign-in only: lifetime of the CF_Authorization cookie and token minted for this application; positive."),
			"cookie":               ref("cookie"),
			"allowed_providers":    nonEmptyList("Built-in sign-in only: the providers (by name, from login.providers) this application accepts; default every one.", str("A provider name.")),
		},
	},
	"cors": {
		desc: "CORS: preflights are answered directly and allowed origins get CORS headers. Without it OPTIONS is an ordinary request.",
		props: props{
			"allow_origins":            list(`Allowed origins (scheme://host[:port], a leading *. wildcard covers one or more labels, "null" for Origin: null).`, str("An origin pattern.")),
			"allow_all_origins":        boolean("Allow any origin (the request's Origin is echoed, never *).", false),
			"allow_methods":            list("Allowed methods (case-sensitive).", str("A method.")),
			"allow_all_methods":        boolean("Allow any method.", false),
			"allow_headers":            list("Allowed request headers (case-insensitive).", str("A header name.")),
			"allow_all_headers":        boolean("Allow any requested header.", false),
			"expose_headers":           list("Response headers a web app may read (Access-Control-Expose-Headers).", str("A header name.")),
			"allow_credentials":        boolean("Send Access-Control-Allow-Credentials: true.", false),
			"max_age":                  maxAge(),
			"allow_private_network":    boolean("Answer Access-Control-Request-Private-Network preflights.", false),
			"bypass_options_to_origin": boolean("Forward preflights to the origin unchecked; only alone in cors.", false),
		},
	},
	"policy": {
		desc:     "A policy: it matches when an include matches, every require matches and no exclude matches.",
		required: []string{"name", "action", "include"},
		props: props{
			"name":    str("Policy name, reported with the decision."),
			"action":  enum("What a match does.", "", "allow", "block", "bypass", "service_auth"),
			"paths":   nonEmptyList("Limit the policy to these path prefixes (segment boundaries); omit for every path.", str("An absolute path prefix.")),
			"include": nonEmptyList("At least one must match.", ref("selector")),
			"require": list("Every one must match.", ref("selector")),
			"exclude": list("None may match.", ref("selector")),
		},
	},
	"selector": {
		desc: "One selector: a mapping with exactly one key.",
		min:  1, max: 1,
		props: props{
			"everyone":          constTrue("Always matches."),
			"email":             nonEmptyList("The token's email equals one (ASCII case-insensitive).", str("An e-mail address.")),
			"email_domain":      nonEmptyList("The token's email ends in @ and one of these (ASCII case-insensitive).", str("A domain, without @.")),
			"group":             nonEmptyList("The token's groups claim (else custom.groups) contains one.", str("A group name or id.")),
			"claim":             claimSchema(),
			"ip":                nonEmptyList("The client address is in one.", str("A CIDR or an address.")),
			"country":           nonEmptyList("The token's country claim is one (ASCII case-insensitive).", pattern(str("A two-letter ISO 3166 code."), "^[A-Za-z]{2}$")),
			"service_token":     nonEmptyList("A valid, unexpired service token with one of these names was presented.", str("A name from service_tokens.")),
			"any_service_token": constTrue("Any valid, unexpired service token was presented."),
			"valid_certificate": constTrue("The client certificate chains to one of client_certificate_authorities and allows client authentication."),
			"common_name":       nonEmptyList("valid_certificate holds and the client certificate's subject common name equals one (exact).", str("A common name.")),
		},
	},
}

// parserObjects maps each mapping the parser reads, by its name in the
// parser's messages, to its schema object; TestSchemaMatchesParser compares
// their keys.
var parserObjects = map[string]string{
	"policy file":   "policy_file",
	"issuer":        "issuer",
	"service token": "service_token",
	"application":   "application",
	"cors":          "cors",
	"policy":        "policy",
	"login":         "login",
	"provider":      "provider",
	"cookie":        "cookie",
}

// otherFileMappings are mappings the parser reads from files the policy
// file names, not from the policy file itself: the schema does not
// describe them.
var otherFileMappings = map[string]bool{
	"revocations file": true,
	"revocation":       true,
}

// Schema returns the JSON Schema (draft 2020-12) of the policy file,
// indented, with a trailing newline.
func Schema() []byte {
	defs := map[string]any{}
	for name, o := range schemaObjects {
		if name != "policy_file" {
			defs[name] = o.schema()
		}
	}
	root := schemaObjects["policy_file"].schema()
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["title"] = "accessgate policy file"
	root["$defs"] = defs
	b, err := json.MarshalIndent(root, "", "  ")
	if err != nil {
		panic(err) // static data: cannot fail
	}
	return append(b, '\n')
}

type props map[string]map[string]any

// object is a mapping of the policy file; unknown keys are errors.
type object struct {
	desc     string
	required []string
	props    props
	min, max int
	extra    map[string]any
}

func (o object) schema() map[string]any {
	s := map[string]any{
		"type":                 "object",
		"description":          o.desc,
		"properties":           o.props,
		"additionalProperties": false,
	}
	if len(o.required) > 0 {
		s["required"] = o.required
	}
	if o.min > 0 {
		s["minProperties"] = o.min
	}
	if o.max > 0 {
		s["maxProperties"] = o.max
	}
	for k, v := range o.extra {
		s[k] = v
	}
	return s
}

// nonBlank is what the parser's "must not be empty" means for a string.
const nonBlank = `\S`

func str(desc string) map[string]any {
	return map[string]any{"type": "string", "description": desc, "pattern": nonBlank}
}

// scalar is a string the parser also takes when YAML reads it as a number
// (an audience or client_id may be all digits).
func scalar(desc string) map[string]any {
	return map[string]any{"type": []string{"string", "number"}, "description": desc, "pattern": nonBlank}
}

func boolean(desc string, def bool) map[string]any {
	return map[string]any{"type": "boolean", "description": desc, "default": def}
}

func constTrue(desc string) map[string]any {
	return map[string]any{"const": true, "description": desc}
}

func enum(desc, def string, values ...string) map[string]any {
	s := map[string]any{"type": "string", "description": desc, "enum": values}
	if def != "" {
		s["default"] = def
	}
	return s
}

func list(desc string, items map[string]any) map[string]any {
	return map[string]any{"type": "array", "description": desc, "items": items}
}

func nonEmptyList(desc string, items map[string]any) map[string]any {
	s := list(desc, items)
	s["minItems"] = 1
	return s
}

func ref(name string) map[string]any {
	return map[string]any{"$ref": "#/$defs/" + name}
}

func duration(desc string) map[string]any {
	return pattern(str(desc+" A Go duration such as 30s or 12h."), `^([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h))*$|^0$`)
}

func withDefault(s map[string]any, def any) map[string]any {
	s["default"] = def
	return s
}

func pattern(s map[string]any, re string) map[string]any {
	s["pattern"] = re
	return s
}

func format(s map[string]any, f string) map[string]any {
	s["format"] = f
	return s
}

func maxAge() map[string]any {
	return map[string]any{
		"type":        "integer",
		"description": "Seconds a browser may cache a preflight answer (Access-Control-Max-Age), 0 to 86400.",
		"minimum":     0,
		"maximum":     maxMaxAge,
	}
}

func claimSchema() map[string]any {
	return map[string]any{
		"type":                 "object",
		"description":          "The token claim NAME (dotted names reach into objects, e.g. custom.department) equals VALUE, or contains it when the claim is an array.",
		"minProperties":        1,
		"maxProperties":        1,
		"additionalProperties": map[string]any{"type": []string{"string", "number", "boolean"}},
	}
}
