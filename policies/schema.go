package policies

import (
	"encoding/json"
)

// This file describes the policy file as a JSON Schema (draft 2020-12) for
// editors: `accessgate schema` prints it, and the YAML language server
// completes and checks a file that names it.
//
// Adding a key to the parser means adding it here too, in the object of
// the function that reads it (schemaObjects): TestSchemaMatchesParser reads
// the parser's source and fails, naming the key, when the two differ.

// schemaObjects are the mappings of the policy file: each object's
// properties are exactly the keys the parser function named in
// parserObjects accepts.
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
			"name":             str("Application name, used in answers, logs and metrics."),
			"domains":          nonEmptyList("Hosts with an optional leading *. wildcard (one label) and an optional path prefix, e.g. api.example.com/v1.", str("host[/path]")),
			"issuer":           str("Name of the issuer (in issuers) whose tokens this application accepts."),
			"audience":         scalar("The token's aud must contain this (the application's AUD tag)."),
			"unauthenticated":  enum("What a browser navigation without a valid token gets: a redirect to login_url, or 401.", "redirect", "redirect", "deny"),
			"cors":             ref("cors"),
			"identity_headers": boolean("Set Cf-Access-Authenticated-User-Email and Cf-Access-Jwt-Assertion on forwarded requests.", true),
			"policies":         nonEmptyList("Policies: bypass and service_auth first, in file order; then block and allow, in file order; the first match decides.", ref("policy")),
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
			"valid_certificate": constTrue("The client certificate chains to a configured certificate authority."),
		},
	},
}

// parserObjects maps each parser function that reads a mapping to its
// schema object; TestSchemaMatchesParser compares their keys.
var parserObjects = map[string]string{
	"set":          "policy_file",
	"issuer":       "issuer",
	"serviceToken": "service_token",
	"application":  "application",
	"cors":         "cors",
	"policy":       "policy",
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
