package policies

// PLACEHOLDERS: the policies helper replaces this whole file with real
// implementations in their own files. The signatures are the contract.

type hostIndex struct{}
type originMatcher struct{}

// Load reads, validates and compiles the policy file at path. Validation
// problems come back as an ErrorList (every problem, in file order).
func Load(path string) (*Set, error) { panic("TODO") }

// Parse validates and compiles data as if read from file; jwks_file paths are
// resolved against filepath.Dir(file).
func Parse(file string, data []byte) (*Set, error) { panic("TODO") }

// Lookup returns the application for a lower-cased host without port or
// trailing dot and a normalized path (no query), or nil.
func (s *Set) Lookup(host, path string) *Application { panic("TODO") }

// OriginAllowed reports whether the request's Origin value is allowed.
func (c *CORS) OriginAllowed(origin string) bool { panic("TODO") }

// LoginTemplate is a compiled login_url.
type LoginTemplate struct{}

// Render fills {host}, {aud} and {redirect}, each query-escaped.
func (t *LoginTemplate) Render(host, aud, redirect string) string { panic("TODO") }

// Error is one validation problem at a position in the policy file.
type Error struct {
	File      string
	Line, Col int
	Msg       string
}

func (e *Error) Error() string { panic("TODO") }

// ErrorList is every validation problem of a file, sorted by position.
type ErrorList []*Error

func (l ErrorList) Error() string { panic("TODO") }
