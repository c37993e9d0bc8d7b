package policies

import (
	"strings"
	"testing"
)

// TestCaseSensitivePaths: `case_sensitive_paths` is a boolean, false
// unless set, compiled per application.
func TestCaseSensitivePaths(t *testing.T) {
	tests := []struct {
		name    string
		give    string // the key's line, "" to leave it out
		want    bool
		wantErr string
	}{
		{"default", "", false, ""},
		{"true", "    case_sensitive_paths: true\n", true, ""},
		{"false", "    case_sensitive_paths: false\n", false, ""},
		{"not a boolean", "    case_sensitive_paths: yes\n", false, "test.yaml:10:27: case_sensitive_paths must be true or false, not a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := issuerYAML + "applications:\n" + strings.Replace(appYAML("app", "app.example.com"),
				"    domains:", tt.give+"    domains:", 1)
			s, err := Parse("test.yaml", []byte(src))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("Parse error = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := s.Applications[0].CaseSensitivePaths; got != tt.want {
				t.Errorf("CaseSensitivePaths = %v, want %v", got, tt.want)
			}
		})
	}
}
