package policies

// LowerASCII folds the ASCII letters A–Z of s to a–z and leaves every other
// byte as it is: the one case fold of accessgate, used for e-mail
// addresses, e-mail domains, country codes, hosts and origins, on the
// policy side (here) and on the request side alike.
//
// Only A–Z fold. Unicode case mapping (strings.ToLower) is refused on
// purpose: it turns the Kelvin sign K (U+212A) into an ASCII k, so that a
// token or a host spelled with it would compare equal to a policy value it
// is not, while É would fold on one side and not on a byte-for-byte other.
// With A–Z only, both sides fold the same way whatever they hold.
//
// s itself is returned, without allocating, when it holds no A–Z.
func LowerASCII(s string) string {
	i := 0
	for i < len(s) && !('A' <= s[i] && s[i] <= 'Z') {
		i++
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if c := b[i]; 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// firstNonASCII returns the first rune of s outside ASCII, and whether
// there is one.
func firstNonASCII(s string) (rune, bool) {
	for _, r := range s {
		if r >= 0x80 {
			return r, true
		}
	}
	return 0, false
}
