package envoyconf

// DefaultAuth is the accessgate address of envoy/envoy-http.yaml: its
// --auth-addr, where the ext_authz http_service asks.
var DefaultAuth = Addr{"accessgate", 9002}

// DefaultLogin is the sign-in address of envoy/envoy-http.yaml: accessgate's
// --login-addr, where the application host's /cdn-cgi/access/* goes.
var DefaultLogin = Addr{"accessgate", 9003}

// SubstituteHTTP is Substitute for envoy/envoy-http.yaml: the listener,
// admin and origin addresses as there, accessgate at DefaultAuth
// (to.Accessgate replaces it) and its sign-in listener at DefaultLogin
// (to.Login). Each must appear exactly once.
func SubstituteHTTP(data []byte, to Addrs) ([]byte, error) {
	return substitute(data, []swap{
		{DefaultListener, to.Listener},
		{DefaultAdmin, to.Admin},
		{DefaultAuth, to.Accessgate},
		{DefaultLogin, to.Login},
		{DefaultOrigin, to.Origin},
	})
}
