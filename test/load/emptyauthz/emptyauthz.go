// Package emptyauthz is the baseline of accessgate's load comparison: an
// ext_authz v3 server that answers OK at once, without looking at the
// request. It is what "as cheap as answering OK" means in docs/benchmarks.md:
// the gRPC transport, protobuf decoding of the CheckRequest and encoding of
// a minimal CheckResponse, and nothing else. Never deploy it.
package emptyauthz

import (
	"context"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// Server answers every Check with OK.
type Server struct {
	authv3.UnimplementedAuthorizationServer
}

var _ authv3.AuthorizationServer = Server{}

// ok is shared by every answer: protobuf messages may be marshalled
// concurrently as long as nobody modifies them.
var ok = &authv3.CheckResponse{
	Status:       &rpcstatus.Status{Code: int32(codes.OK)},
	HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
}

// Check answers OK.
func (Server) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return ok, nil
}

// Register registers the empty server as the Authorization service of g.
func Register(g grpc.ServiceRegistrar) { authv3.RegisterAuthorizationServer(g, Server{}) }

// Fixed answers every Check with one CheckResponse, without looking at the
// request: with accessgate's own answer to a request, it is the price of
// carrying that answer (encoding it, writing it) and nothing else.
type Fixed struct {
	authv3.UnimplementedAuthorizationServer
	Answer *authv3.CheckResponse // shared, never modified
}

// Check answers Answer.
func (f Fixed) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return f.Answer, nil
}
