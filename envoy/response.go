package envoy

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"

	"github.com/accessgate/accessgate/authz"
)

// Shared, never-modified parts of responses. Protobuf messages may be
// marshalled concurrently, so one instance serves every response and saves an
// allocation per Check.
var (
	statusOK               = &rpcstatus.Status{Code: int32(codes.OK)}
	statusPermissionDenied = &rpcstatus.Status{Code: int32(codes.PermissionDenied)}
	statusUnauthenticated  = &rpcstatus.Status{Code: int32(codes.Unauthenticated)}

	httpNoContent  = &typev3.HttpStatus{Code: typev3.StatusCode_NoContent}
	httpFound      = &typev3.HttpStatus{Code: typev3.StatusCode_Found}
	httpBadRequest = &typev3.HttpStatus{Code: typev3.StatusCode_BadRequest}
	httpUnauth     = &typev3.HttpStatus{Code: typev3.StatusCode_Unauthorized}
	httpForbidden  = &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden}
)

// response turns a Decision into Envoy's CheckResponse (contract section 4).
//
// A forward is status OK with an OkHttpResponse. Every other answer is a
// DeniedHttpResponse; its gRPC status is UNAUTHENTICATED for 401 and for
// the 302 login redirect (the client lacks credentials) and
// PERMISSION_DENIED otherwise (preflight 204, 400, 403). Envoy treats every
// non-OK code alike and sends the DeniedHttpResponse; the code only shows in
// Envoy's logs and access logs. A Decision with no verdict is denied (403):
// fail closed.
//
// Every header is sent with an explicit append_action (never the default,
// whose meaning changed in Envoy 1.37): OVERWRITE_IF_EXISTS_OR_ADD, or
// APPEND_IF_EXISTS_OR_ADD for a Header with Append (Vary).
func response(d *authz.Decision) *authv3.CheckResponse {
	if d.Verdict == authz.Forward {
		a := &okAnswer{}
		a.resp.Status = statusOK
		a.resp.HttpResponse = &a.wrap
		a.wrap.OkResponse = &a.ok
		ok := &a.ok
		ok.Headers = a.options(d.Headers)
		ok.HeadersToRemove = d.HeadersToRemove
		ok.ResponseHeadersToAdd = a.options(d.ResponseHeaders)
		if dropped := invalidHeaders(d.Headers); dropped > 0 {
			// A set header Envoy would refuse (CR, LF, NUL or over 16 KiB)
			// was left out; remove the client's own copy instead so it can
			// never be spoofed.
			ok.HeadersToRemove = removeInvalid(d.HeadersToRemove, d.Headers, dropped)
		}
		return &a.resp
	}
	st := statusPermissionDenied
	if d.Status == 401 || d.Status == 302 {
		st = statusUnauthenticated
	}
	return &authv3.CheckResponse{
		Status: st,
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  httpStatus(d.Status),
			Headers: headerOptions(d.ResponseHeaders),
			Body:    d.Body,
		}},
	}
}

// okInline is how many headers (set on the request and added to the
// response together) a forward's answer holds without another allocation:
// the identity pair and a CORS answer's four fit.
const okInline = 6

// okAnswer is a forward's CheckResponse with every part it points to, so
// that the answer to an allowed request is one allocation rather than
// seven (the response, its oneof wrapper, the OkHttpResponse and two
// slices per header list). grpc-go marshals it after Check returns and
// then drops it; nothing else keeps a pointer into it.
type okAnswer struct {
	resp authv3.CheckResponse
	wrap authv3.CheckResponse_OkResponse
	ok   authv3.OkHttpResponse
	used int // of opts and ptrs
	opts [okInline]headerOption
	ptrs [okInline]*corev3.HeaderValueOption
}

// options converts hs like headerOptions, into a's inline room while it
// lasts.
func (a *okAnswer) options(hs []authz.Header) []*corev3.HeaderValueOption {
	if len(hs) == 0 {
		return nil
	}
	n := a.used + len(hs)
	if n > okInline {
		return headerOptions(hs)
	}
	// The three-index slice keeps an append to one list from running
	// into the next.
	out := optionsInto(a.opts[a.used:n], a.ptrs[a.used:a.used:n], hs)
	a.used = n
	return out
}

// httpStatus returns the HttpStatus for code, shared for the usual ones.
// A code Envoy's enum lacks (it would fail validation) becomes 403.
func httpStatus(code int) *typev3.HttpStatus {
	switch code {
	case 204:
		return httpNoContent
	case 302:
		return httpFound
	case 400:
		return httpBadRequest
	case 401:
		return httpUnauth
	case 403:
		return httpForbidden
	}
	if _, ok := typev3.StatusCode_name[int32(code)]; !ok || code < 100 {
		return httpForbidden
	}
	return &typev3.HttpStatus{Code: typev3.StatusCode(code)}
}

// headerOption keeps a HeaderValueOption and its HeaderValue together so
// that a list of n headers costs two allocations, not 2n+1.
type headerOption struct {
	opt corev3.HeaderValueOption
	val corev3.HeaderValue
}

// headerOptions converts hs, leaving out any header Envoy would refuse.
func headerOptions(hs []authz.Header) []*corev3.HeaderValueOption {
	if len(hs) == 0 {
		return nil
	}
	return optionsInto(make([]headerOption, len(hs)), make([]*corev3.HeaderValueOption, 0, len(hs)), hs)
}

// optionsInto converts hs into store (len(hs) long), appending to out (with
// room for len(hs)) and returning it, leaving out any header Envoy would
// refuse.
func optionsInto(store []headerOption, out []*corev3.HeaderValueOption, hs []authz.Header) []*corev3.HeaderValueOption {
	for i := range hs {
		h := &hs[i]
		if !authz.ValidHeader(h.Key, h.Value) {
			continue
		}
		o := &store[i]
		o.val.Key = h.Key
		o.val.Value = h.Value
		o.opt.Header = &o.val
		o.opt.AppendAction = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		if h.Append {
			o.opt.AppendAction = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
		}
		out = append(out, &o.opt)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func invalidHeaders(hs []authz.Header) int {
	n := 0
	for i := range hs {
		if !authz.ValidHeader(hs[i].Key, hs[i].Value) {
			n++
		}
	}
	return n
}

// removeInvalid returns remove plus the keys of the invalid headers of hs, in
// a new slice (remove belongs to the Decision and may be shared).
func removeInvalid(remove []string, hs []authz.Header, n int) []string {
	out := make([]string, len(remove), len(remove)+n)
	copy(out, remove)
	for i := range hs {
		k := hs[i].Key
		if !authz.ValidHeader(k, hs[i].Value) && authz.ValidHeaderName(k) {
			out = append(out, k)
		}
	}
	return out
}
