package policies

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// placeholder is what a login_url part is filled with.
type placeholder int

const (
	phNone placeholder = iota // a literal part
	phHost
	phAud
	phRedirect
)

var placeholders = map[string]placeholder{
	"host":     phHost,
	"aud":      phAud,
	"redirect": phRedirect,
}

// loginPart is a literal or a placeholder of a login_url.
type loginPart struct {
	lit string
	ph  placeholder
}

// LoginTemplate is a compiled login_url: split once at load into literals
// and placeholders, so that rendering is a few appends.
type LoginTemplate struct {
	raw   string
	parts []loginPart
	size  int // bytes of literal text, to size the output up front
}

// String returns the login_url as written.
func (t *LoginTemplate) String() string { return t.raw }

// Render fills {host}, {aud} and {redirect}, each query-escaped: the values
// become query-string values, so `&`, `=`, `?` and `/` must not leak into
// the URL's structure.
func (t *LoginTemplate) Render(host, aud, redirect string) string {
	var b strings.Builder
	b.Grow(t.size + 3*(len(host)+len(aud)+len(redirect)))
	for _, part := range t.parts {
		switch part.ph {
		case phHost:
			b.WriteString(url.QueryEscape(host))
		case phAud:
			b.WriteString(url.QueryEscape(aud))
		case phRedirect:
			b.WriteString(url.QueryEscape(redirect))
		default:
			b.WriteString(part.lit)
		}
	}
	return b.String()
}

// parseLoginTemplate splits s into literals and placeholders. An unknown
// {name} or an unbalanced brace is refused rather than passed through,
// because a typo ({redirect_url}) would otherwise send users to a broken
// login page. The filled-in result must be an absolute http(s) URL.
func parseLoginTemplate(s string) (*LoginTemplate, error) {
	t := &LoginTemplate{raw: s}
	rest := s
	for rest != "" {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			t.parts = append(t.parts, loginPart{lit: rest})
			t.size += len(rest)
			break
		}
		if i > 0 {
			t.parts = append(t.parts, loginPart{lit: rest[:i]})
			t.size += i
		}
		if rest[i] == '}' {
			return nil, fmt.Errorf("unbalanced } at offset %d", len(s)-len(rest)+i)
		}
		j := strings.IndexAny(rest[i+1:], "{}")
		if j < 0 || rest[i+1+j] == '{' {
			return nil, fmt.Errorf("unbalanced { at offset %d", len(s)-len(rest)+i)
		}
		name := rest[i+1 : i+1+j]
		ph, ok := placeholders[name]
		if !ok {
			return nil, fmt.Errorf("unknown placeholder {%s} (want {host}, {aud} or {redirect})", name)
		}
		t.parts = append(t.parts, loginPart{ph: ph})
		rest = rest[i+2+j:]
	}
	if !isHTTPURL(t.Render("app.example.com", "aud", "https://app.example.com/")) {
		return nil, errors.New("want an absolute http or https URL")
	}
	return t, nil
}
