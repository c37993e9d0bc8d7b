package policies

import (
	"go/ast"
	goparser "go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestSetFiles: Files lists every file a set was read from besides the
// policy file, resolved against the policy file's folder, once each, in
// the order read; a file without references lists none.
func TestSetFiles(t *testing.T) {
	dir := filepath.Join("testdata", "valid")
	abs, err := filepath.Abs(filepath.Join(dir, "keys", "jwks.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		file string // in testdata/valid, or "" for src
		src  string
		want []string
	}{
		{name: "jwks_url only", src: appsFile([]string{"a", "a.example.com"})},
		{
			name: "jwks_file", file: "contract_jwks_file.yaml",
			want: []string{filepath.Join(dir, "keys", "jwks.json")},
		},
		{
			name: "login section: signing keys, cookie secret, client secret", file: "login.yaml",
			want: []string{
				filepath.Join(dir, "keys", "login-ec.pem"),
				filepath.Join(dir, "keys", "login-rsa.pem"),
				filepath.Join(dir, "keys", "login-cookie.secret"),
				filepath.Join(dir, "keys", "login-corp.secret"),
			},
		},
		{
			// The same bundle twice is one file; an absolute jwks_file
			// stays as written.
			name: "CA bundles, absolute jwks_file",
			src: "client_certificate_authorities: [certs/ca.pem, ./certs/ca.pem]\n" +
				"issuers:\n  - name: team\n    issuer: https://team.example.com\n    jwks_file: " + abs + "\n" +
				"    login_url: https://team.example.com/login/{host}?r={redirect}\n" +
				"applications:\n" + appYAML("a", "a.example.com"),
			want: []string{filepath.Join(dir, "certs", "ca.pem"), abs},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file, src := filepath.Join(dir, "generated.yaml"), []byte(tc.src)
			if tc.file != "" {
				file = filepath.Join(dir, tc.file)
				if src, err = os.ReadFile(file); err != nil {
					t.Fatal(err)
				}
			}
			set, err := Parse(file, src)
			if err != nil {
				t.Fatal(err)
			}
			if got := set.Files(); !slices.Equal(got, tc.want) {
				t.Errorf("Files() = %q, want %q", got, tc.want)
			}
			// The list is the caller's to keep: changing it changes
			// nothing in the set.
			if got := set.Files(); len(got) > 0 {
				got[0] = "changed"
				if set.Files()[0] == "changed" {
					t.Error("Files returns the set's own slice")
				}
			}
		})
	}
}

// TestReferencedFilesAreNoted: no code of the package reads a referenced
// file except through readFile, which notes it for Set.Files. A new file
// in the format read with readSmallFile (or os.ReadFile) directly would not
// be watched by serve; this fails instead.
func TestReferencedFilesAreNoted(t *testing.T) {
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := goparser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	readers := map[string]bool{"readSmallFile": true, "ReadFile": true, "Open": true, "OpenFile": true}
	var calls int
	for _, f := range files {
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				var callee string
				switch f := call.Fun.(type) {
				case *ast.Ident:
					callee = f.Name
				case *ast.SelectorExpr:
					if x, ok := f.X.(*ast.Ident); ok && x.Name == "os" {
						callee = f.Sel.Name
					}
				}
				if !readers[callee] {
					return true
				}
				calls++
				switch fn.Name.Name {
				case "readFile", "readSmallFile": // the reader itself
				case "Load": // the policy file, which the caller watches
				case "LoadRevocations":
					// The revocations file has a watch of its own that
					// swaps only the revocations, without reloading the
					// policy.
				default:
					t.Errorf("%s: %s calls %s: read referenced files with p.readFile, so that Set.Files lists them",
						fset.Position(call.Pos()), fn.Name.Name, callee)
				}
				return true
			})
		}
	}
	if calls < 3 { // readFile's, readSmallFile's own open, Load's
		t.Fatalf("found %d file reads in the package; the scan no longer sees them", calls)
	}
}
