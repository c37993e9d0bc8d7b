package test

import (
	"regexp"
	"strings"
	"testing"
)

// TestReadmeSnippetsAreShippedLines: every README code block marked
// `<!-- snippet: FILE -->` is made of lines of FILE, in FILE's order, so
// the proxy sections cannot drift from the configurations the end-to-end
// tests run.
func TestReadmeSnippetsAreShippedLines(t *testing.T) {
	readme := readFile(t, "../README.md")
	blocks := regexp.MustCompile("(?s)<!-- snippet: (\\S+) -->\n```[a-z]*\n(.*?)\n```").FindAllStringSubmatch(readme, -1)
	if len(blocks) < 4 {
		t.Fatalf("found %d snippets, want one per proxy (4)", len(blocks))
	}
	for _, b := range blocks {
		file, snippet := b[1], b[2]
		lines := strings.Split(readFile(t, "../"+file), "\n")
		at := 0
		for _, want := range strings.Split(snippet, "\n") {
			if strings.TrimSpace(want) == "" {
				continue
			}
			found := false
			for ; at < len(lines); at++ {
				if lines[at] == want {
					found = true
					at++
					break
				}
			}
			if !found {
				t.Errorf("README snippet of %s: line %q is not in the file (after the lines before it)", file, want)
				break
			}
		}
	}
}
