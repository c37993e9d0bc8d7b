package authz

// The core's input limits (issue 6): the contract's 64 KiB header and
// 16 KiB token limits, and the caps on cookies and X-Forwarded-For entries
// parsed, each exactly at and just over the limit, and at 10,000 entries.

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func TestLimitHeaderBytes(t *testing.T) {
	f := newEngineFixture(t)
	// pad returns headers whose names and values add up to exactly n bytes.
	pad := func(n int) []string { return []string{"x-pad", strings.Repeat("p", n-len("x-pad"))} }
	many := func(n int) []string { // n bytes spread over 1,000 headers
		var h []string
		for i := range 1000 {
			name := fmt.Sprintf("x-%03d", i)
			h = append(h, name, strings.Repeat("v", n/1000-len(name)))
		}
		return h
	}
	tests := []struct {
		name       string
		headers    []string
		wantStatus int
	}{
		{"one header exactly 64 KiB", pad(maxHeaderBytes), 200},
		{"one header 64 KiB + 1", pad(maxHeaderBytes + 1), 400},
		{"1000 headers at 64000 bytes", many(64000), 200},
		{"1000 headers at 66000 bytes", many(66000), 400},
		{"two headers exactly 64 KiB", append(pad(maxHeaderBytes-10), "x-six", "seven"), 200},
		{"two headers one byte over", append(pad(maxHeaderBytes-10), "x-six", "eight!"), 400},
	}
	// The adapter's HeaderBytes: unknown (Decide counts), the exact sum,
	// or an upper bound past the limit (Decide counts again, so a bound
	// never refuses headers within the limit).
	known := []struct {
		name string
		n    func(exact int) int
	}{
		{"unknown", func(int) int { return 0 }},
		{"exact", func(exact int) int { return exact }},
		{"bound over the limit", func(exact int) int { return max(exact, maxHeaderBytes) + 100 }},
	}
	for _, tt := range tests {
		for _, k := range known {
			t.Run(tt.name+"/"+k.name, func(t *testing.T) {
				give := req("GET", "app.example.com", "/healthz", tt.headers...)
				give.HeaderBytes = k.n(headerBytes(give.Headers))
				d := f.engine.Decide(context.Background(), give)
				if d.Status != tt.wantStatus {
					t.Errorf("Decide(headers of %d bytes, HeaderBytes %d) = %d %q, want %d",
						headerBytes(give.Headers), give.HeaderBytes, d.Status, d.Reason, tt.wantStatus)
				}
			})
		}
	}
}

// TestHeaderBytesTrusted: a HeaderBytes within the limit is taken as is,
// without a pass over the map; that pass is what it saves. (Adapters set
// it from what they counted or from the size of the message that carried
// the headers, never lower.)
func TestHeaderBytesTrusted(t *testing.T) {
	f := newEngineFixture(t)
	give := req("GET", "app.example.com", "/healthz", "x-pad", strings.Repeat("p", maxHeaderBytes))
	if d := f.engine.Decide(context.Background(), give); d.Status != 400 {
		t.Fatalf("Decide(65 KiB of headers, HeaderBytes unknown) = %d, want 400", d.Status)
	}
	give.HeaderBytes = 100
	if d := f.engine.Decide(context.Background(), give); d.Status != 200 {
		t.Errorf("Decide(HeaderBytes 100) = %d %q, want 200: the adapter's count was not used", d.Status, d.Reason)
	}
}

// tokenOfSize signs a valid dashboard token for alice padded to exactly n
// bytes. Base64 cannot reach every length from the payload alone, so it
// also varies the protected header.
func (f *engineFixture) tokenOfSize(t *testing.T, n int) string {
	t.Helper()
	k := f.signer()
	base := sign(t, k, dashboardClaims("alice@example.com"), nil)
	for _, extra := range []map[string]any{nil, {"typ": "JWT"}, {"typ": "JOSE"}, {"cty": "x"}} {
		// Each payload byte is 4/3 of a token byte: start just below.
		for p := max(0, (n-len(base))*3/4-24); p < (n-len(base))*3/4+8; p++ {
			tok := sign(t, k, with(dashboardClaims("alice@example.com"), "pad", strings.Repeat("x", p)), extra)
			if len(tok) == n {
				return tok
			}
		}
	}
	t.Fatalf("no token of exactly %d bytes", n)
	return ""
}

func TestLimitTokenSize(t *testing.T) {
	f := newEngineFixture(t)
	tests := []struct {
		name       string
		size       int
		wantStatus int
		wantReason Reason
	}{
		{"exactly 16 KiB", maxTokenSize, 200, ReasonAllowed},
		{"16 KiB + 1", maxTokenSize + 1, 401, ReasonTokenMalformed},
		{"16 KiB + 2", maxTokenSize + 2, 401, ReasonTokenMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := f.tokenOfSize(t, tt.size)
			for _, source := range []string{"cookie", "cf-access-jwt-assertion", "authorization"} {
				value := map[string]string{"cookie": "CF_Authorization=" + tok, "cf-access-jwt-assertion": tok, "authorization": "Bearer " + tok}[source]
				d := f.engine.Decide(context.Background(), req("GET", "app.example.com", "/", source, value))
				if d.Status != tt.wantStatus || d.Reason != tt.wantReason {
					t.Errorf("Decide(%d-byte token in %s) = %d %q, want %d %q", len(tok), source, d.Status, d.Reason, tt.wantStatus, tt.wantReason)
				}
			}
		})
	}
}

func TestLimitCookies(t *testing.T) {
	f := newEngineFixture(t)
	alice := "CF_Authorization=" + f.token(claims{email: "alice@example.com"})
	// jar returns n cookies, the token (when at > 0) being the at-th.
	jar := func(n, at int) string {
		parts := make([]string, 0, n)
		for i := 1; i <= n; i++ {
			if i == at {
				parts = append(parts, alice)
			} else {
				parts = append(parts, "c=1")
			}
		}
		return strings.Join(parts, "; ")
	}
	tests := []struct {
		name       string
		cookie     string
		wantStatus int
		wantReason Reason
	}{
		// Every cookie is scanned (section 3, revision 2): the 64 KiB
		// header limit bounds the work, not a cookie count.
		{"token is the 64th cookie", jar(64, 64), 200, ReasonAllowed},
		{"token is the 65th cookie", jar(65, 65), 200, ReasonAllowed},
		{"10,000 cookies token first", jar(10000, 1), 200, ReasonAllowed},
		{"10,000 cookies token last", jar(10000, 10000), 200, ReasonAllowed},
		{"10,000 cookies no token", jar(10000, 0), 401, ReasonTokenMissing},
		{"10,000 empty cookies then token", strings.Repeat(";", 10000) + alice, 200, ReasonAllowed},
		{"3,000 empty tokens then token", strings.Repeat("CF_Authorization=;", 3000) + alice, 200, ReasonAllowed},
		{"forged token after 100 cookies is judged", jar(100, 0) + "; CF_Authorization=forged; " + alice, 401, ReasonTokenMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := f.engine.Decide(context.Background(), req("GET", "app.example.com", "/", "cookie", tt.cookie))
			if d.Status != tt.wantStatus || d.Reason != tt.wantReason {
				t.Errorf("Decide(%d-byte cookie) = %d %q, want %d %q", len(tt.cookie), d.Status, d.Reason, tt.wantStatus, tt.wantReason)
			}
		})
	}
	h := map[string]string{"cookie": tt10k + "; " + alice}
	if n := testing.AllocsPerRun(10, func() { tokenFrom(h) }); n != 0 {
		t.Errorf("tokenFrom(10,000 cookies) allocs = %v, want 0", n)
	}
}

// tt10k is a Cookie header of 10,000 cookies, none of them the token.
var tt10k = strings.Repeat("c=1; ", 9999) + "c=1"

// xff joins entries as Envoy joins X-Forwarded-For headers.
func xff(entries ...string) string { return strings.Join(entries, ",") }

// repeat returns n copies of s.
func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestLimitForwardedFor(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	proxy := netip.MustParseAddr("10.1.2.3")
	// distinct trusted hops, so the test sees which one the walk ended on.
	hops := make([]string, 10000)
	for i := range hops {
		hops[i] = fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff)
	}
	tests := []struct {
		name string
		xff  string
		want string // "" for no address
	}{
		{"client then 31 trusted hops", xff(append([]string{"192.0.2.10"}, hops[:31]...)...), "192.0.2.10"},
		{"client then 32 trusted hops", xff(append([]string{"192.0.2.10"}, hops[:32]...)...), hops[0]},
		{"garbage then 32 trusted hops", xff(append([]string{"not-an-ip"}, hops[:32]...)...), hops[0]},
		{"garbage then 31 trusted hops", xff(append([]string{"not-an-ip"}, hops[:31]...)...), ""},
		{"10,000 trusted hops", xff(hops...), hops[len(hops)-32]},
		{"10,000 garbage entries", xff(repeat("x", 10000)...), ""},
		{"10,000 commas", strings.Repeat(",", 10000), ""},
		{"9,999 garbage entries then the client", xff(append(repeat("x", 9999), "192.0.2.10")...), "192.0.2.10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Request{SourceIP: proxy, Headers: map[string]string{"x-forwarded-for": tt.xff}}
			got := clientIP(r, trusted)
			if (tt.want == "" && got.IsValid()) || (tt.want != "" && got != netip.MustParseAddr(tt.want)) {
				t.Errorf("clientIP(%d-byte X-Forwarded-For) = %v, want %q", len(tt.xff), got, tt.want)
			}
		})
	}
}

func TestLimitForwardedForDecide(t *testing.T) {
	f := newEngineFixture(t)
	tok := "CF_Authorization=" + f.token(claims{country: "PT", aud: []string{"aud-private"}})
	// 10,000 entries stay under 64 KiB with one-byte junk on the left; the
	// office policy requires the client in 192.0.2.0/24.
	entries := func(client string, trustedHops int) string {
		e := append(repeat("x", 10000-1-trustedHops), client)
		return xff(append(e, repeat("10.0.0.1", trustedHops)...)...)
	}
	tests := []struct {
		name       string
		xff        string
		wantReason Reason
	}{
		{"office client behind 31 trusted hops", entries("192.0.2.10", 31), ReasonAllowed},
		{"office client behind 32 trusted hops", entries("192.0.2.10", 32), ReasonNoPolicyMatch},
		{"outside client behind 5 trusted hops", entries("198.51.100.1", 5), ReasonNoPolicyMatch},
		{"forged office entry left of the client", xff(append(repeat("192.0.2.10", 5000), "198.51.100.1", "10.0.0.1")...), ReasonNoPolicyMatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			give := req("GET", "private.example.com", "/", "cookie", tok, "x-forwarded-for", tt.xff)
			give.SourceIP = netip.MustParseAddr("10.1.2.3")
			d := f.engine.Decide(context.Background(), give)
			if d.Reason != tt.wantReason {
				t.Errorf("Decide(%d-entry X-Forwarded-For) = %d %q, want %q", strings.Count(tt.xff, ",")+1, d.Status, d.Reason, tt.wantReason)
			}
		})
	}
}

// BenchmarkLimits shows that the largest inputs that pass the 64 KiB limit
// cost about what an ordinary one costs: the cookie and X-Forwarded-For
// scans stop at their caps.
func BenchmarkLimits(b *testing.B) {
	b.Run("cookies-10000", func(b *testing.B) {
		h := map[string]string{"cookie": tt10k + "; CF_Authorization=x"}
		b.ReportAllocs()
		for b.Loop() {
			tokenFrom(h)
		}
	})
	b.Run("xff-10000", func(b *testing.B) {
		r := &Request{SourceIP: netip.MustParseAddr("10.1.2.3"), Headers: map[string]string{"x-forwarded-for": xff(repeat("10.0.0.1", 10000)...)}}
		trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		b.ReportAllocs()
		for b.Loop() {
			clientIP(r, trusted)
		}
	})
}
