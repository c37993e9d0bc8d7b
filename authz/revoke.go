package authz

import "github.com/accessgate/accessgate/policies"

// ruleRevoked is the Rule of a token_revoked decision.
const ruleRevoked = "session.revoked"

// SwapRevocations makes r the live revocations (nil: none), unless the
// engine already holds a later read of the same file: the policy reload
// and the revocations watcher both read it, and the later read must win
// whichever swaps last. It reports whether r was taken.
func (e *Engine) SwapRevocations(r *policies.Revocations) bool {
	for {
		old := e.revoked.Load()
		if old != nil && r != nil && old.File == r.File && !r.Newer(old) {
			return false
		}
		if e.revoked.CompareAndSwap(old, r) {
			return true
		}
	}
}

// Revocations returns the live revocations (nil when none).
func (e *Engine) Revocations() *policies.Revocations { return e.revoked.Load() }

// Revoked reports whether the live revocations cut id's session: its email
// (A-Z folded) or sub matches an entry whose before is at or after its
// iat (contract section 11). The team domain asks it for its org session,
// so a revoked user signs in at the provider again.
func (e *Engine) Revoked(id *Identity) bool {
	rv := e.revoked.Load()
	return rv != nil && id != nil && rv.Revoked(id.emailFold, id.Sub, id.IssuedAt)
}

// preflightRule names the cors setting that refused a preflight.
func preflightRule(reason Reason) string {
	switch reason {
	case ReasonPreflightOrigin:
		return "cors.allow_origins"
	case ReasonPreflightMethod:
		return "cors.allow_methods"
	case ReasonPreflightHeader:
		return "cors.allow_headers"
	case ReasonPreflightPrivateNetwork:
		return "cors.allow_private_network"
	}
	return ""
}
