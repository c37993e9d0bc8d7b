// Package authz is accessgate's decision core: a normalized Request in, a
// Decision out. It knows nothing of gRPC or protobuf; the envoy package
// adapts Envoy's CheckRequest to it.
package authz

import "net/netip"

// Request is one HTTP request as the gate sees it.
type Request struct {
	Method string
	Scheme string
	// Host is the :authority as sent (port kept); Decide lower-cases it and
	// strips the port and a trailing dot for matching.
	Host string
	// Path is the raw request target: path and query, undecoded.
	Path string
	// Headers have lower-case names. Duplicates are joined with ",", as
	// Envoy sends them (several Cookie headers too: the cookie list is
	// split on both ';' and ',').
	Headers map[string]string
	// HeaderBytes, when above 0, is what the adapter already knows of the
	// size of Headers: the sum of every name and value length, or an upper
	// bound of it (the size of the message that carried them). Decide
	// checks the 64 KiB header limit on it and counts the map itself only
	// when it is 0 (unknown) or over the limit; an adapter that builds the
	// map counts while building and saves Decide a pass over it.
	HeaderBytes int
	// SourceIP is the downstream connection's address (Envoy's
	// source.address); invalid when unknown.
	SourceIP netip.Addr
	// ClientCert is the client certificate the proxy passed, as PEM (already
	// URL-decoded); empty when none.
	ClientCert string

	// Application is the per-route application binding (contract §10):
	// the name of the application the gateway's route names, used instead
	// of the host-and-path lookup. ONLY THE GATEWAY MAY SET IT: over gRPC
	// from Envoy's context_extensions["accessgate-application"], over the
	// HTTP endpoints from the X-Accessgate-Application fact header, and
	// only when the policy file sets require_application_binding (a
	// request header of a client is never a binding). Empty means no
	// binding, unless ApplicationBound is set.
	Application string
	// ApplicationBound marks a binding that was present but empty: an
	// empty name is a name that does not exist (403 no_application).
	// Adapters set it whenever they set Application from a present value.
	ApplicationBound bool
	// ApplicationFromFact marks a binding read from the HTTP endpoints'
	// X-Accessgate-Application fact: it counts only when the policy file
	// sets require_application_binding, so a hand-written proxy
	// configuration that forgets to overwrite the header cannot let a
	// client choose its application (contract §7). A gRPC binding comes
	// from Envoy's route, never from the client, and always counts.
	ApplicationFromFact bool
	// Upgrade is the original request's Upgrade header, for the WebSocket
	// origin rule (contract §11). The HTTP endpoints fill it from
	// X-Forwarded-Upgrade, since proxies drop the hop-by-hop Upgrade on the
	// auth hop; when it is empty, Headers["upgrade"] is read (gRPC).
	Upgrade string
}

// Bound reports whether the gateway bound r to an application (see
// Application). A binding from a §7 fact counts only under
// require_application_binding (see ApplicationFromFact); Decide checks.
func (r *Request) Bound() bool { return r.Application != "" || r.ApplicationBound }

// Verdict is what Envoy is told to do.
type Verdict int

const (
	// Forward sends the request on to the origin (CheckResponse OK).
	Forward Verdict = iota + 1
	// Deny answers the client directly with Status, ResponseHeaders and Body
	// (a preflight answer, a redirect, 400/401/403).
	Deny
)

// Header is one header to set. Append adds a value to what is there
// instead of overwriting it (used for Vary).
type Header struct {
	Key    string // lower-case
	Value  string
	Append bool
}

// Decision is the answer for one Request.
//
// Its slices (Headers, HeadersToRemove, ResponseHeaders) may be shared with
// other decisions: answers that are the same for every request are built
// once, at load or from a cached token, and handed out as they are. Treat
// them as read-only; copy before changing one (an append to a shared slice
// always reallocates, since they are kept at full capacity).
type Decision struct {
	Verdict Verdict
	// Status is 200 for a forward, else the HTTP status of the direct answer.
	Status int
	Reason Reason
	// Application and Policy name what decided (either may be empty).
	Application string
	Policy      string
	// Headers are set on the upstream request (forward only), overwriting.
	Headers []Header
	// HeadersToRemove are removed from the upstream request (forward only).
	HeadersToRemove []string
	// ResponseHeaders go on the response to the client: for a forward,
	// Envoy's response_headers_to_add; for a deny, the answer's headers.
	ResponseHeaders []Header
	// Body of a deny answer.
	Body string

	// Rule names the selector that decided, by its place in its policy
	// (contract §11): the first include entry that matched
	// ("include[0].email_domain"); for no_policy_match, the exclude entry
	// that matched or the require entry that failed in the first policy
	// whose include matched ("exclude[0].email", with Policy naming that
	// policy); "cors.allow_origins" and its siblings for a refused
	// preflight; "session.revoked" for token_revoked; empty otherwise.
	Rule string
	// Identity is the verified Access token's identity behind the
	// decision (nil without one); read-only and shared, like Headers.
	Identity *Identity
	// ServiceToken names the valid service token presented, if any.
	ServiceToken string

	// unknownBinding is set when the gateway's binding named an
	// application the policy file does not define (see UnknownBinding).
	unknownBinding bool
}

// Reason is the typed reason code of a decision, spelled as in the
// contract; the same value is logged and used as a metric label.
type Reason string

// Reason codes (contract section 4).
const (
	ReasonBypass                  Reason = "bypass"
	ReasonServiceToken            Reason = "service_token"
	ReasonAllowed                 Reason = "allowed"
	ReasonPreflight               Reason = "preflight"
	ReasonPreflightOrigin         Reason = "preflight_origin"
	ReasonPreflightMethod         Reason = "preflight_method"
	ReasonPreflightHeader         Reason = "preflight_header"
	ReasonPreflightPrivateNetwork Reason = "preflight_private_network"
	ReasonTokenMissing            Reason = "token_missing"
	ReasonTokenMalformed          Reason = "token_malformed"
	ReasonTokenSignature          Reason = "token_signature"
	ReasonTokenExpired            Reason = "token_expired"
	ReasonTokenNotYetValid        Reason = "token_not_yet_valid"
	ReasonTokenAudience           Reason = "token_audience"
	ReasonTokenIssuer             Reason = "token_issuer"
	ReasonTokenUnknownKey         Reason = "token_unknown_key"
	ReasonServiceTokenInvalid     Reason = "service_token_invalid"
	ReasonServiceTokenExpired     Reason = "service_token_expired"
	ReasonBlocked                 Reason = "blocked"
	ReasonNoPolicyMatch           Reason = "no_policy_match"
	ReasonNoApplication           Reason = "no_application"
	ReasonBadRequest              Reason = "bad_request"
	// ReasonPreflightMisrouted: a CORS preflight reached an HTTP endpoint
	// whose 2xx means "forward" (contract section 7).
	ReasonPreflightMisrouted Reason = "preflight_misrouted"
	// ReasonSigninMisrouted: a /cdn-cgi/access/* request reached an HTTP
	// endpoint instead of the sign-in listener (contract section 7).
	ReasonSigninMisrouted Reason = "signin_misrouted"
	// Revision 3 (§10, §11).
	ReasonApplicationMismatch Reason = "application_mismatch"
	ReasonTokenRevoked        Reason = "token_revoked"
	ReasonWebsocketOrigin     Reason = "websocket_origin"
)

// Reasons lists every reason code of a Decision: the 403 bodies are built
// from it once, and tests walk it.
var Reasons = []Reason{
	ReasonBypass, ReasonServiceToken, ReasonAllowed, ReasonPreflight,
	ReasonPreflightOrigin, ReasonPreflightMethod, ReasonPreflightHeader,
	ReasonPreflightPrivateNetwork, ReasonTokenMissing, ReasonTokenMalformed,
	ReasonTokenSignature, ReasonTokenExpired, ReasonTokenNotYetValid,
	ReasonTokenAudience, ReasonTokenIssuer, ReasonTokenUnknownKey,
	ReasonServiceTokenInvalid, ReasonServiceTokenExpired, ReasonBlocked,
	ReasonNoPolicyMatch, ReasonNoApplication, ReasonBadRequest,
	ReasonPreflightMisrouted, ReasonSigninMisrouted,
	ReasonApplicationMismatch, ReasonTokenRevoked, ReasonWebsocketOrigin,
}
