package login

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"
	"go.uber.org/zap"

	"github.com/accessgate/accessgate/login/internal/logintest"
	"github.com/accessgate/accessgate/test/otlpreceiver"
	"github.com/accessgate/accessgate/tracing"
)

// TestSignInSpans: with a tracer provider, a whole sign-in exports the
// callback's span (a child of the browser's traceparent) and the provider
// calls' spans, the code exchange under the callback, through the real
// OTLP exporter to a real receiver. No span holds a cookie, code, state,
// token, secret, query or email.
func TestSignInSpans(t *testing.T) {
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
		"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_TRACES_SAMPLER", "OTEL_BSP_MAX_QUEUE_SIZE"} {
		t.Setenv(k, "")
	}
	rcv := otlpreceiver.New()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.StartHTTP(t))
	tr, err := tracing.New(context.Background(), zap.NewNop(), nil, "test")
	if err != nil || tr == nil {
		t.Fatalf("tracing.New = %v, %v", tr, err)
	}
	m := startMock(t, nil)
	m.QueueUser(&mockoidc.MockUser{Subject: "u1", Email: "Alice@Example.com", EmailVerified: true, Groups: []string{"admins"}})
	e := newEnvWith(t, logintest.Config{Providers: []logintest.Provider{mockProvider("corp", m, groupsScopes)}},
		func(o *Options) { o.TracerProvider = tr.TracerProvider() })
	b := e.browser()

	resp := b.team(loginPath("app.example.com", "app-aud", "https://app.example.com/dash?tab=1", "https://app.example.com:8443"))
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	cb := b.provider(resp.Header.Get("Location"))
	const browserTrace, browserSpan = "5b8aa5a2d2c872e8321cf37308d69df2", "051581bf3cb55c13"
	req, _ := http.NewRequest(http.MethodGet, e.http.URL+cb, nil)
	for _, c := range b.cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	req.Header.Set("Traceparent", "00-"+browserTrace+"-"+browserSpan+"-01")
	resp = b.do(req)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("callback: %d, want 302", resp.StatusCode)
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	callback := rcv.WaitFor(t, 10*time.Second, 1, otlpreceiver.Named(CallbackSpan))[0]
	if callback.TraceID != browserTrace || callback.ParentSpanID != browserSpan {
		t.Errorf("callback span: trace %s parent %s, want the traceparent's", callback.TraceID, callback.ParentSpanID)
	}
	if got := callback.Attrs["http.response.status_code"].GetIntValue(); got != http.StatusFound {
		t.Errorf("callback status = %d, want 302", got)
	}
	exchange := rcv.WaitFor(t, 10*time.Second, 1, func(s otlpreceiver.Span) bool {
		return s.Name == "accessgate.signin.provider POST" && s.ParentSpanID == callback.SpanID
	})[0]
	if exchange.TraceID != browserTrace || !strings.HasPrefix(exchange.Str("url.full"), m.Issuer()) {
		t.Errorf("code exchange span: trace %s url %q", exchange.TraceID, exchange.Str("url.full"))
	}
	// Discovery ran at start: its calls are spans too.
	rcv.WaitFor(t, 10*time.Second, 1, func(s otlpreceiver.Span) bool {
		return s.Name == "accessgate.signin.provider GET" && strings.HasSuffix(s.Str("url.full"), "/.well-known/openid-configuration")
	})
	secrets := append([]string{"Alice@Example.com", "alice@example.com", m.ClientSecret, "?"}, b.seen...)
	for _, s := range rcv.Spans() {
		text := s.Text()
		for _, secret := range secrets {
			if secret != "" && strings.Contains(text, secret) {
				t.Errorf("span %s holds %q", s.Name, secret)
			}
		}
	}
	if len(b.seen) < 3 {
		t.Fatalf("the scan had only %d cookie, code and state values to look for", len(b.seen))
	}
}
