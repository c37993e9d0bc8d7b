package envoy

import (
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.uber.org/zap"

	"github.com/accessgate/accessgate/authz"
)

// ContextExtensionApplication is the context_extensions key of the
// per-route application binding (contract §10): Envoy's per-route
// check_settings.context_extensions, Envoy Gateway's
// extAuth.contextExtensions. Only the gateway's configuration sets context
// extensions; a request header named x-accessgate-application is an
// ordinary header and never a binding.
const ContextExtensionApplication = "accessgate-application"

// unknownBindingEvery is how often a binding to an unknown application is
// warned about, per name.
const unknownBindingEvery = time.Minute

// bindingFrom copies the route's binding into r. A key present with an
// empty value is a binding too: to an application that does not exist.
func bindingFrom(attrs *authv3.AttributeContext, r *authz.Request) {
	if name, ok := attrs.GetContextExtensions()[ContextExtensionApplication]; ok {
		r.Application, r.ApplicationBound = name, true
	}
}

// warnUnknownBinding logs, at most once a minute per name, that a route
// names an application the policy file does not define: every request on
// that route is refused until the two agree.
func (s *Server) warnUnknownBinding(r *authz.Request, d *authz.Decision) {
	if !authz.UnknownBinding(r, d) || !s.bindingWarnings.Allow(r.Application, time.Now()) {
		return
	}
	s.log.Warn("route bound to an unknown application; refusing its requests with no_application",
		zap.String("application", r.Application),
		zap.String("host", r.Host))
}
