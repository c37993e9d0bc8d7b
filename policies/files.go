package policies

import "slices"

// readFile reads a file the policy file references (a jwks_file, a CA
// bundle, a signing key, a secret) through readSmallFile, and notes its
// path, readable or not, for Set.Files. Every such read goes through here
// (TestReferencedFilesAreNoted checks it), so that a file added to the
// format is watched without anyone remembering to.
func (p *parser) readFile(path string, limit int64) ([]byte, error) {
	if !slices.Contains(p.files, path) {
		p.files = append(p.files, path)
	}
	return readSmallFile(path, limit)
}

// Files lists every file the set was read from besides the policy file
// itself: jwks_file key sets, client_certificate_authorities bundles, the
// login section's signing keys and secrets, and any other file the policy
// file names. Paths are as read (resolved against the policy file's folder),
// each once, in the order first read. serve watches them and reloads the
// policy file when one of them changes, as when the policy file does.
func (s *Set) Files() []string { return slices.Clone(s.files) }
