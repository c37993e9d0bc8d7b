package policies

import (
	"fmt"
	"strings"
	"testing"
)

// scaleFile builds a policy file with n applications shaped like a large
// real deployment, not the minimal entries of genFile: 20 issuers, 100
// service tokens, and per application two domains (exact and wildcard,
// every fifth on a shared host with a path prefix), CORS on every other
// one, and five policies using most selectors. It returns the file and a
// (host, path) per application that Lookup must resolve to it.
func scaleFile(n int) ([]byte, [][2]string) {
	var b strings.Builder
	b.Grow(n * 900)
	b.WriteString("default_action: deny\ntrusted_proxies: [10.0.0.0/8, \"fd00::/8\"]\nissuers:\n")
	for i := range 20 {
		fmt.Fprintf(&b, "  - name: idp%d\n    issuer: https://idp%d.example.com\n    jwks_url: https://idp%d.example.com/cdn-cgi/access/certs\n"+
			"    login_url: https://idp%d.example.com/cdn-cgi/access/login/{host}?kid={aud}&redirect_url={redirect}\n    leeway: 30s\n", i, i, i, i)
	}
	b.WriteString("service_tokens:\n")
	for i := range 100 {
		fmt.Fprintf(&b, "  - name: bot%d\n    client_id: %032x.access\n    client_secret_sha256: %064x\n", i, i, i)
	}
	b.WriteString("applications:\n")
	reqs := make([][2]string, 0, n)
	for i := range n {
		fmt.Fprintf(&b, "  - name: app%d\n    issuer: idp%d\n    audience: %064x\n    domains:\n", i, i%20, i)
		if i%5 == 4 {
			fmt.Fprintf(&b, "      - shared.example.com/svc%d\n", i)
			reqs = append(reqs, [2]string{"shared.example.com", fmt.Sprintf("/svc%d/items/42", i)})
		} else {
			fmt.Fprintf(&b, "      - app%d.example.com\n      - \"*.app%d.example.com\"\n", i, i)
			reqs = append(reqs, [2]string{fmt.Sprintf("eu.app%d.example.com", i), "/"})
		}
		if i%2 == 0 {
			fmt.Fprintf(&b, "    cors:\n      allow_origins: [https://www%d.example.com, \"https://*.site%d.example.org\"]\n"+
				"      allow_methods: [GET, POST, PUT]\n      allow_headers: [content-type, x-requested-with]\n"+
				"      allow_credentials: true\n      max_age: 600\n", i, i)
		}
		fmt.Fprintf(&b, "    policies:\n"+
			"      - name: health\n        action: bypass\n        paths: [/healthz]\n        include: [{everyone: true}]\n"+
			"      - name: bots\n        action: service_auth\n        include: [{service_token: [bot%d, bot%d]}]\n"+
			"      - name: contractors\n        action: block\n        include: [{email_domain: [contractor%d.example.com]}]\n"+
			"      - name: staff\n        action: allow\n        include: [{email_domain: [example.com]}, {group: [team%d]}]\n"+
			"        require: [{ip: [10.%d.0.0/16, \"2001:db8:%x::/48\"]}]\n        exclude: [{email: [mallory%d@example.com]}]\n"+
			"      - name: partners\n        action: allow\n        include: [{claim: {custom.partner: p%d}}, {country: [pt, nl]}]\n",
			i%100, (i+1)%100, i, i, i%256, i, i, i)
	}
	return []byte(b.String()), reqs
}

// TestParseScale loads a 1,000-application file (10,000 in the benchmark,
// which checks the same) and checks that every application is found where
// it should be. It makes no claim about time: BenchmarkParseScale records
// that.
func TestParseScale(t *testing.T) {
	checkScale(t, 1000)
}

func checkScale(tb testing.TB, n int) {
	tb.Helper()
	src, reqs := scaleFile(n)
	set, err := Parse("scale.yaml", src)
	if err != nil {
		tb.Fatalf("Parse(%d applications): %v", n, err)
	}
	if len(set.Applications) != n {
		tb.Fatalf("Parse: %d applications, want %d", len(set.Applications), n)
	}
	for i, r := range reqs {
		if got := set.Lookup(r[0], r[1]); got != set.Applications[i] {
			tb.Fatalf("Lookup(%q, %q) = %v, want app%d", r[0], r[1], got, i)
		}
	}
}

// BenchmarkParseScale records how long a large policy file takes to load
// (parse, validate and compile: what a start or a reload costs), as
// ms/load, with the file's size.
//
//	go test -run='^$' -bench=ParseScale -benchtime=5x ./policies/
func BenchmarkParseScale(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		src, _ := scaleFile(n)
		b.Run(fmt.Sprintf("apps=%d", n), func(b *testing.B) {
			checkScale(b, n) // before b.Loop, which starts the timer afresh
			b.ReportAllocs()
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				if _, err := Parse("scale.yaml", src); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/load")
			b.ReportMetric(float64(len(src))/(1<<20), "MiB")
		})
	}
}
