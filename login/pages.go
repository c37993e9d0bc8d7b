package login

import (
	"bytes"
	"html/template"
	"net/http"
	"strconv"
	"strings"
)

// contentSecurityPolicy allows nothing but the page itself: no script, no
// style sheet, no frame, no form target. The pages need none of them.
const contentSecurityPolicy = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// page is what every sign-in page shows. html/template escapes every
// value, so a provider name or an error text from a provider cannot add
// markup.
type page struct {
	Title   string
	Message string
	Detail  string
	Choices []choice
}

// choice is one provider of the picker.
type choice struct {
	Name string
	URL  string // relative: /cdn-cgi/access/login/...
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{.Title}}</title>
</head>
<body>
<main>
<h1>{{.Title}}</h1>
{{with .Message}}<p>{{.}}</p>{{end}}
{{with .Detail}}<p>{{.}}</p>{{end}}
{{if .Choices}}<nav aria-label="Identity providers">
<ul>
{{range .Choices}}<li><a href="{{.URL}}">Sign in with {{.Name}}</a></li>
{{end}}</ul>
</nav>{{end}}
</main>
</body>
</html>
`))

// maxDetail bounds text from outside (a provider's error description) on
// a page.
const maxDetail = 200

// writePage renders p with status. Security headers are already set by
// ServeHTTP.
func writePage(w http.ResponseWriter, status int, p page) {
	if len(p.Detail) > maxDetail {
		p.Detail = strings.ToValidUTF8(p.Detail[:maxDetail], "") + "…"
	}
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, p); err != nil {
		// Only a template bug gets here; the values are all strings.
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}
