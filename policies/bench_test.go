package policies

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// genFile builds a policy file with n applications: a third exact hosts,
// a third wildcard hosts, a third path prefixes on a shared host, so that
// every index path is exercised. It returns the file and one (host, path)
// per application that Lookup must resolve to it.
func genFile(n int) (string, [][2]string) {
	var b strings.Builder
	b.WriteString(issuerYAML)
	b.WriteString("applications:\n")
	reqs := make([][2]string, 0, n)
	for i := range n {
		var domain string
		switch i % 3 {
		case 0:
			domain = fmt.Sprintf("app%d.example.com", i)
			reqs = append(reqs, [2]string{domain, "/index.html"})
		case 1:
			domain = fmt.Sprintf("*.tenant%d.example.com", i)
			reqs = append(reqs, [2]string{fmt.Sprintf("eu.tenant%d.example.com", i), "/api/v1/users"})
		default:
			domain = fmt.Sprintf("api.example.com/svc%d", i)
			reqs = append(reqs, [2]string{"api.example.com", fmt.Sprintf("/svc%d/items/42", i)})
		}
		b.WriteString(appYAML(fmt.Sprintf("app%d", i), domain))
	}
	return b.String(), reqs
}

func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		src, reqs := genFile(n)
		set := mustParse(b, src)
		for i, r := range reqs {
			if got := set.Lookup(r[0], r[1]); got != set.Applications[i] {
				b.Fatalf("Lookup(%q, %q) = %v, want app%d", r[0], r[1], got, i)
			}
		}
		b.Run(fmt.Sprintf("apps=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r := reqs[i%len(reqs)]
				set.Lookup(r[0], r[1])
				i++
			}
		})
	}
}

func BenchmarkOriginAllowed(b *testing.B) {
	for _, n := range []int{1, 1000} {
		var list []string
		for i := range n {
			if i%2 == 0 {
				list = append(list, fmt.Sprintf("https://www%d.example.com", i))
			} else {
				list = append(list, fmt.Sprintf(`"https://*.site%d.example.org"`, i))
			}
		}
		c := corsOf(b, "allow_origins: ["+strings.Join(list, ", ")+"]")
		last := n - 1
		origins := map[string]string{
			"exact": "https://www0.example.com",
			"miss":  "https://evil.example.net",
		}
		if last%2 == 1 {
			origins["wildcard"] = fmt.Sprintf("https://a.b.site%d.example.org", last)
		}
		for name, o := range origins {
			b.Run(fmt.Sprintf("origins=%d/%s", n, name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					c.OriginAllowed(o)
				}
			})
		}
	}
}

func BenchmarkCompile(b *testing.B) {
	big, _ := genFile(1000)
	files := map[string]string{"apps=1000": big}
	for name, src := range files {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse("bench.yaml", []byte(src)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("contract", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Load(filepath.Join("testdata", "valid", "contract.yaml")); err != nil {
				b.Fatal(err)
			}
		}
	})
}
