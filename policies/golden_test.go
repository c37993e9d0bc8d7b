package policies

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the testdata/invalid/*.golden files")

// TestInvalidGolden loads every testdata/invalid/NAME.yaml and compares the
// full error list with NAME.golden: the exact FILE:LINE:COL: message lines
// a user of `accessgate validate` sees.
func TestInvalidGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "invalid", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no invalid test files: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			set, err := Load(file)
			if set != nil {
				t.Errorf("Load(%s) returned a Set with error %v", file, err)
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("Load(%s) error = %v (%T), want an ErrorList", file, err, err)
			}
			if !sortedByPosition(list) {
				t.Errorf("Load(%s) errors not sorted by position:\n%v", file, err)
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("Load(%s) errors:\n%s\nwant:\n%s", file, got, want)
			}
		})
	}
}

func sortedByPosition(l ErrorList) bool {
	for i := 1; i < len(l); i++ {
		a, b := l[i-1], l[i]
		if a.Line > b.Line || a.Line == b.Line && a.Col > b.Col {
			return false
		}
	}
	return true
}
