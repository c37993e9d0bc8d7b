package policies

import (
	"bytes"
	"encoding/json"
	"go/ast"
	goparser "go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// mappingKeys reads this package's non-test Go files and returns the keys
// every p.mapping(node, what, keys...) call accepts, by the mapping's name
// in messages (what: a string literal, or a constant of the enclosing
// function such as `const what = "issuer"`). A `list...` argument is
// resolved to its package-level []string literal.
func mappingKeys(t *testing.T) map[string][]string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	lit := func(e ast.Expr) (string, bool) {
		bl, ok := e.(*ast.BasicLit)
		if !ok || bl.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(bl.Value)
		return s, err == nil
	}
	var parsed []*ast.File
	vars := map[string]*ast.CompositeLit{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := goparser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, f)
		for _, d := range f.Decls {
			if gd, ok := d.(*ast.GenDecl); ok && gd.Tok == token.VAR {
				for _, spec := range gd.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if i < len(vs.Values) {
							if cl, ok := vs.Values[i].(*ast.CompositeLit); ok {
								vars[n.Name] = cl
							}
						}
					}
				}
			}
		}
	}
	keys := map[string][]string{}
	for _, f := range parsed {
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			consts := map[string]string{}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				if gd, ok := n.(*ast.GenDecl); ok && gd.Tok == token.CONST {
					for _, spec := range gd.Specs {
						vs := spec.(*ast.ValueSpec)
						for i, name := range vs.Names {
							if i < len(vs.Values) {
								if s, ok := lit(vs.Values[i]); ok {
									consts[name.Name] = s
								}
							}
						}
					}
				}
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || sel.Sel.Name != "mapping" || len(call.Args) < 2 {
					return true
				}
				what, ok := lit(call.Args[1])
				if id, isID := call.Args[1].(*ast.Ident); !ok && isID {
					what, ok = consts[id.Name]
				}
				if !ok {
					t.Fatalf("%s: p.mapping's name is neither a string literal nor a constant of %s; teach mappingKeys", fset.Position(call.Args[1].Pos()), fd.Name.Name)
				}
				list := keys[what]
				for _, a := range call.Args[2:] {
					if s, ok := lit(a); ok {
						list = append(list, s)
						continue
					}
					id, ok := a.(*ast.Ident)
					if !ok || vars[id.Name] == nil || call.Ellipsis == token.NoPos {
						t.Fatalf("%s: p.mapping argument is neither a string literal nor a []string variable...; teach mappingKeys", fset.Position(a.Pos()))
					}
					for _, el := range vars[id.Name].Elts {
						s, ok := lit(el)
						if !ok {
							t.Fatalf("%s: %s holds a non-literal", fset.Position(el.Pos()), id.Name)
						}
						list = append(list, s)
					}
				}
				keys[what] = list // recorded even with no keys: the mapping exists
				return true
			})
		}
	}
	if len(keys) == 0 {
		t.Fatal("found no p.mapping calls: teach mappingKeys where the parser keeps its keys now")
	}
	return keys
}

// diffKeys reports the keys in one list and not the other.
func diffKeys(t *testing.T, obj string, parser, schema []string) {
	t.Helper()
	for _, k := range parser {
		if !slices.Contains(schema, k) {
			t.Errorf("%s: the parser accepts %q but the schema lacks it: add it to schemaObjects[%q] in schema.go", obj, k, obj)
		}
	}
	for _, k := range schema {
		if !slices.Contains(parser, k) {
			t.Errorf("%s: the schema has %q but the parser does not accept it", obj, k)
		}
	}
}

// TestSchemaMatchesParser fails when a key, selector or action is in the
// parser and not the schema, or the other way round.
func TestSchemaMatchesParser(t *testing.T) {
	keys := mappingKeys(t)
	for what, list := range keys {
		obj, ok := parserObjects[what]
		if !ok && otherFileMappings[what] {
			continue
		}
		if !ok {
			t.Errorf("the parser reads a mapping %q with keys %v that the schema does not describe: add an object to schemaObjects and map %q to it in parserObjects", what, list, what)
			continue
		}
		diffKeys(t, obj, list, slices.Collect(maps.Keys(schemaObjects[obj].props)))
	}
	for what := range parserObjects {
		if _, ok := keys[what]; !ok {
			t.Errorf("parserObjects names %q, a mapping the parser does not read", what)
		}
	}
	diffKeys(t, "selector", slices.Collect(maps.Keys(selectorKinds)), slices.Collect(maps.Keys(schemaObjects["selector"].props)))
	diffKeys(t, "policy.action", slices.Collect(maps.Keys(actions)), schemaObjects["policy"].props["action"]["enum"].([]string))
}

// TestSchemaDefaults: the defaults the schema shows are the parser's.
func TestSchemaDefaults(t *testing.T) {
	iss := schemaObjects["issuer"].props
	for _, tt := range []struct {
		key  string
		want time.Duration
	}{{"jwks_refresh", defaultJWKSRefresh}, {"leeway", defaultLeeway}} {
		d, err := time.ParseDuration(iss[tt.key]["default"].(string))
		if err != nil || d != tt.want {
			t.Errorf("schema default of %s = %v, parser's is %v", tt.key, iss[tt.key]["default"], tt.want)
		}
	}
	// Compile an application that leaves every defaulted key out.
	s, err := Parse("d.yaml", []byte(minimalPolicy))
	if err != nil {
		t.Fatal(err)
	}
	app := s.Applications[0]
	wantUnauth := map[string]Unauthenticated{"redirect": UnauthRedirect, "deny": UnauthDeny}[schemaObjects["application"].props["unauthenticated"]["default"].(string)]
	if app.Unauthenticated != wantUnauth || app.IdentityHeaders != schemaObjects["application"].props["identity_headers"]["default"] {
		t.Errorf("application defaults: unauthenticated %v, identity_headers %v; schema says %v, %v", app.Unauthenticated, app.IdentityHeaders,
			schemaObjects["application"].props["unauthenticated"]["default"], schemaObjects["application"].props["identity_headers"]["default"])
	}
	if s.DefaultAllow != (schemaObjects["policy_file"].props["default_action"]["default"] == "allow") {
		t.Errorf("default_action default differs from the schema's")
	}
}

const minimalPolicy = `issuers:
  - {name: team, issuer: https://team.example.com, jwks_url: https://team.example.com/certs, login_url: "https://team.example.com/login?r={redirect}"}
applications:
  - name: app
    domains: [app.example.com]
    issuer: team
    audience: aud
    policies: [{name: all, action: allow, include: [{everyone: true}]}]
`

// TestSchemaEnums: every enum value the schema lists is accepted by the
// parser, and a value outside it is refused.
func TestSchemaEnums(t *testing.T) {
	for _, tt := range []struct{ obj, key, old string }{
		{"policy_file", "default_action", ""},
		{"application", "unauthenticated", "    audience: aud\n"},
		{"policy", "action", "action: allow"},
	} {
		values := slices.Clone(schemaObjects[tt.obj].props[tt.key]["enum"].([]string))
		for _, v := range append(values, "bogus") {
			var doc string
			switch tt.obj {
			case "policy_file":
				doc = "default_action: " + v + "\n" + minimalPolicy
			case "application":
				doc = strings.Replace(minimalPolicy, tt.old, tt.old+"    unauthenticated: "+v+"\n", 1)
			default:
				doc = strings.Replace(minimalPolicy, tt.old, "action: "+v, 1)
			}
			_, err := Parse("e.yaml", []byte(doc))
			if (err == nil) != (v != "bogus") {
				t.Errorf("%s %s: %q: Parse error %v", tt.obj, tt.key, v, err)
			}
		}
	}
}

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema()))
	if err != nil {
		t.Fatalf("Schema() is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource("policy.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	// Compile checks the schema against the draft 2020-12 meta-schema.
	sch, err := c.Compile("policy.schema.json")
	if err != nil {
		t.Fatalf("compile schema: %v", err)
	}
	return sch
}

// instance reads a YAML file as the YAML language server would see it: as
// JSON data.
func instance(t *testing.T, data []byte) (any, bool) {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, false
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, false
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	return inst, err == nil
}

// validPolicyFiles are policy files `validate` accepts, across the
// repository.
func validPolicyFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, g := range []string{"testdata/valid/*.yaml", "../cmd/accessgate/demo/policy.yaml", "../envoy/compose/accessgate/policy.yaml", "../policytest/testdata/policy.yaml"} {
		m, err := filepath.Glob(g)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 5 {
		t.Fatalf("found %d valid policy files, want the testdata and examples", len(files))
	}
	return files
}

// TestSchemaAcceptsValidFiles: every file validate accepts validates.
func TestSchemaAcceptsValidFiles(t *testing.T) {
	sch := compileSchema(t)
	for _, f := range validPolicyFiles(t) {
		t.Run(f, func(t *testing.T) {
			if _, err := Load(f); err != nil {
				t.Fatalf("not a valid policy file: %v", err)
			}
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			inst, ok := instance(t, data)
			if !ok {
				t.Fatal("not YAML data")
			}
			if err := sch.Validate(inst); err != nil {
				t.Errorf("schema refuses a valid file: %v", err)
			}
		})
	}
}

// schemaErrors are the parser messages of problems a JSON Schema can see:
// an unknown key, a missing key, a type or an enum value.
var schemaErrors = regexp.MustCompile(`unknown key|missing required key|must be a (mapping|list|string)|must be an integer|must be true or false|unknown (default_action|unauthenticated|action|selector)|selector has more than one key|out of range 0\.\.86400|missing jwks_url or jwks_file|set only one of jwks_url and jwks_file|must not be empty|empty selector`)

// errorsInFile reports whether a golden names a problem of file itself,
// not only of files it names (a revocations file), which the schema of the
// policy file cannot see.
func errorsInFile(golden []byte, file string) bool {
	for _, line := range strings.Split(string(golden), "\n") {
		if strings.HasPrefix(line, file+":") {
			return true
		}
	}
	return false
}

// TestSchemaRefusesInvalidFiles: every invalid testdata file whose
// expected errors include one a schema can see fails validation. The
// goldens say which, so new invalid files are covered as they come.
func TestSchemaRefusesInvalidFiles(t *testing.T) {
	sch := compileSchema(t)
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range files {
		golden, err := os.ReadFile(strings.TrimSuffix(f, ".yaml") + ".golden")
		if err != nil {
			t.Fatal(err)
		}
		if !schemaErrors.Match(golden) || !errorsInFile(golden, f) {
			continue
		}
		checked++
		t.Run(f, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Parse(f, data); err == nil {
				t.Fatal("the parser accepts it: not an invalid file")
			}
			inst, ok := instance(t, data)
			if !ok {
				return // not even YAML data: no editor would accept it either
			}
			if err := sch.Validate(inst); err == nil {
				t.Errorf("schema accepts a file with these errors:\n%s", golden)
			}
		})
	}
	if checked < 10 {
		t.Errorf("only %d invalid files have schema-visible errors; the goldens or schemaErrors changed", checked)
	}
}

// TestSchemaPinpoints: each file of testdata/schema has exactly one
// problem, and the schema refuses each one for it (a schema that refused
// everything would pass TestSchemaRefusesInvalidFiles too).
func TestSchemaPinpoints(t *testing.T) {
	sch := compileSchema(t)
	files, err := filepath.Glob("testdata/schema/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/schema files: %v", err)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, perr := Parse(f, data)
			list, _ := perr.(ErrorList)
			if len(list) != 1 {
				t.Fatalf("want exactly one parser error, got %v", perr)
			}
			inst, _ := instance(t, data)
			if err := sch.Validate(inst); err == nil {
				t.Errorf("schema accepts it; the parser says %v", list[0])
			}
			// The same file with the faulty line removed is valid for both.
			fixed := removeLine(data, list[0].Line)
			if _, err := Parse(f, fixed); err != nil {
				t.Fatalf("without line %d: %v", list[0].Line, err)
			}
			inst, _ = instance(t, fixed)
			if err := sch.Validate(inst); err != nil {
				t.Errorf("without line %d the schema still refuses it: %v", list[0].Line, err)
			}
		})
	}
}

func removeLine(data []byte, line int) []byte {
	lines := bytes.Split(data, []byte("\n"))
	return bytes.Join(slices.Delete(lines, line-1, line), []byte("\n"))
}
