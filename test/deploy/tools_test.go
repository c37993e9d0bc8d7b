package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// root is the repository, from this package's folder.
const root = "../.."

// Pinned tool versions; .ci/run builds the same into bin/.
const (
	helmVersion        = "v4.3.2"
	kubeconformVersion = "v0.8.0"
)

var workDir string // TestMain's temporary folder (schemas, rendered files)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "accessgate-deploy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	workDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// tool finds a tool the test cannot run without: $ENV, else bin/NAME in the
// repository. With CI set a missing tool fails the test with the command
// that builds it; otherwise the test skips.
func tool(t *testing.T, name, env, install string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		p = filepath.Join(root, "bin", name)
	}
	abs, err := filepath.Abs(p)
	if err == nil {
		if _, err = os.Stat(abs); err == nil {
			return abs
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found (%v): CI must validate the deployment files; build it with: %s", name, err, install)
	}
	t.Skipf("%s not found (%v); skipping. Build it with: %s", name, err, install)
	return ""
}

func helm(t *testing.T) string {
	t.Helper()
	p := tool(t, "helm", "HELM", "GOBIN=$PWD/bin go install helm.sh/helm/v4/cmd/helm@"+helmVersion)
	out, err := exec.Command(p, "version", "--template", "{{.Version}}").Output()
	// v4.3.2 reports "v4.3" when built with go install (no ldflags).
	if err != nil || !strings.HasPrefix(strings.TrimSpace(string(out)), "v4.") {
		t.Fatalf("%s is not Helm v4 (version %q, %v)", p, out, err)
	}
	return p
}

func kubeconform(t *testing.T) string {
	t.Helper()
	return tool(t, "kubeconform", "KUBECONFORM", "GOBIN=$PWD/bin go install github.com/yannh/kubeconform/cmd/kubeconform@"+kubeconformVersion)
}

// run runs a command and returns its stdout; stderr goes into the error.
func run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// doc is one YAML document of a manifest file.
type doc struct {
	name string // file#index, for messages
	data []byte
}

// splitDocs splits a multi-document YAML stream, dropping documents that
// hold only comments or whitespace.
func splitDocs(name string, data []byte) []doc {
	var docs []doc
	for i, d := range docSep.Split(string(data), -1) {
		empty := true
		for _, l := range strings.Split(d, "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				empty = false
				break
			}
		}
		if !empty {
			docs = append(docs, doc{name: fmt.Sprintf("%s#%d", name, i), data: []byte(d)})
		}
	}
	return docs
}
