package test

import (
	"os"
	"strings"
	"testing"
	"time"

	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"

	"github.com/accessgate/accessgate/test/internal/envoyconf"
)

// defaultDrainDelay is `accessgate serve --drain-delay`'s default: how long
// a stopping replica keeps answering while its health says NOT_SERVING.
const defaultDrainDelay = 5 * time.Second

// TestBootstrapsSurviveRestarts: every shipped bootstrap health-checks the
// ext_authz cluster through gRPC health on the Authorization service (what
// accessgate turns NOT_SERVING first when it stops), fast enough to take a
// stopping replica out of rotation within the default drain delay, and
// retries a check that could not reach a replica on another one.
func TestBootstrapsSurviveRestarts(t *testing.T) {
	for _, file := range []string{bootstrapFile, mtlsBootstrapFile} {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			b, err := envoyconf.Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			ag := cluster(t, b, "accessgate")
			for _, th := range ag.GetCircuitBreakers().GetThresholds() {
				// Envoy's default allows 3 retries in flight per cluster:
				// a restart under load needs more at once.
				if n := th.GetMaxRetries().GetValue(); n < 100 {
					t.Errorf("accessgate cluster circuit breaker max_retries = %d, want 100 or more", n)
				}
			}
			hcs := ag.GetHealthChecks()
			if len(hcs) != 1 {
				t.Fatalf("accessgate cluster has %d health checks, want 1", len(hcs))
			}
			hc := hcs[0]
			if got := hc.GetGrpcHealthCheck().GetServiceName(); got != "envoy.service.auth.v3.Authorization" {
				t.Errorf("grpc_health_check service_name = %q, want envoy.service.auth.v3.Authorization", got)
			}
			// The worst case from a replica stopping to out of rotation:
			// it stops answering, and the cluster saw no traffic yet, so
			// the longer of the two intervals applies.
			interval := max(hc.GetInterval().AsDuration(), hc.GetNoTrafficInterval().AsDuration())
			if hc.GetNoTrafficInterval() == nil {
				interval = max(interval, time.Minute) // Envoy's default no_traffic_interval
			}
			out := time.Duration(hc.GetUnhealthyThreshold().GetValue())*interval +
				hc.GetTimeout().AsDuration() + hc.GetIntervalJitter().AsDuration()
			if out <= 0 || out >= defaultDrainDelay {
				t.Errorf("max(interval, no_traffic_interval) x unhealthy_threshold + timeout + jitter = %v, want under the drain delay %v", out, defaultDrainDelay)
			}
			if got := hc.GetHealthyThreshold().GetValue(); got != 1 {
				t.Errorf("healthy_threshold = %d, want 1: a restarted replica is back at its first good check", got)
			}

			m := hcm(t, b)
			var ea extauthzv3.ExtAuthz
			if err := m.GetHttpFilters()[0].GetTypedConfig().UnmarshalTo(&ea); err != nil {
				t.Fatal(err)
			}
			rp := ea.GetGrpcService().GetRetryPolicy()
			on := strings.Split(rp.GetRetryOn(), ",")
			for _, want := range []string{"connect-failure", "refused-stream", "reset"} {
				if !retryOn(on, want) {
					t.Errorf("ext_authz grpc_service retry_on = %q, want %s in it", rp.GetRetryOn(), want)
				}
			}
			if n := rp.GetNumRetries().GetValue(); n < 1 {
				t.Errorf("ext_authz grpc_service num_retries = %d, want at least 1", n)
			}
			if base := rp.GetRetryBackOff().GetBaseInterval().AsDuration(); base <= 0 || base > ea.GetGrpcService().GetTimeout().AsDuration()/10 {
				t.Errorf("retry base interval %v: want set and far under the check timeout (the default is 1s)", base)
			}
			var prev bool
			for _, p := range rp.GetRetryHostPredicate() {
				prev = prev || p.GetName() == "envoy.retry_host_predicates.previous_hosts"
			}
			if !prev {
				t.Error("ext_authz retry has no previous_hosts predicate: a retry may pick the replica that just failed")
			}
		})
	}
}

// retryOn reports whether the retry_on list holds s.
func retryOn(list []string, s string) bool {
	for _, v := range list {
		if strings.TrimSpace(v) == s {
			return true
		}
	}
	return false
}
