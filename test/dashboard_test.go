package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/accessgate/accessgate/test/testkit"
)

const dashboardFile = "../deploy/helm/accessgate/dashboards/accessgate.json"

type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int    `json:"id"`
		Title      string `json:"title"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		GridPos struct{ X, Y, W, H int } `json:"gridPos"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

var (
	promName  = regexp.MustCompile(`\baccessgate_[a-z_]+\b`)
	promBy    = regexp.MustCompile(`\bby \(([^)]*)\)\s*\(([^()]*\()?\s*(accessgate_[a-z_]+)`)
	promMatch = regexp.MustCompile(`(accessgate_[a-z_]+)\{([^}]*)\}`)
	labelName = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	// Prometheus adds these when it scrapes; the binary never exports them.
	scrapeLabels = map[string]bool{"job": true, "instance": true}
)

// TestGrafanaDashboard checks the dashboard against the metrics the real
// binary exports: it runs accessgate on a policy whose issuer's keys come
// from a JWKS endpoint, makes one decision over gRPC so every metric family
// exists, scrapes /metrics, and requires every metric and every label the
// dashboard's queries name.
func TestGrafanaDashboard(t *testing.T) {
	var d dashboard
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard needs a uid, a title and panels: %+v", d)
	}
	var dsVar bool
	for _, v := range d.Templating.List {
		dsVar = dsVar || (v.Name == "datasource" && v.Type == "datasource")
	}
	if !dsVar {
		t.Error("no datasource variable: the dashboard would be bound to one Grafana's data source")
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %q, want ${datasource}", p.Title, p.Datasource.UID)
		}
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: grid position %+v off the 24-column grid", p.Title, p.GridPos)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
	}

	families := scrapeMetrics(t)
	for _, p := range d.Panels {
		for _, q := range p.Targets {
			names := promName.FindAllString(q.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q query %s names no accessgate metric", p.Title, q.RefID)
			}
			for _, n := range names {
				if _, ok := families[n]; !ok {
					t.Errorf("panel %q: metric %s is not exported by accessgate", p.Title, n)
				}
			}
			check := func(metric string, labels []string) {
				for _, l := range labels {
					if l = strings.TrimSpace(l); l == "" || l == "le" && strings.HasSuffix(metric, "_bucket") || scrapeLabels[l] {
						continue
					}
					if !families[metric][l] {
						t.Errorf("panel %q: %s has no label %q", p.Title, metric, l)
					}
				}
			}
			for _, m := range promBy.FindAllStringSubmatch(q.Expr, -1) {
				check(m[3], strings.Split(m[1], ","))
			}
			for _, m := range promMatch.FindAllStringSubmatch(q.Expr, -1) {
				var labels []string
				for _, l := range labelName.FindAllStringSubmatch(m[2], -1) {
					labels = append(labels, l[1])
				}
				check(m[1], labels)
			}
		}
	}
}

// scrapeMetrics runs the accessgate binary, asks it one check and returns the metric names (histogram series included) of its /metrics
// with the label names each carries.
func scrapeMetrics(t *testing.T) map[string]map[string]bool {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "accessgate")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/accessgate/accessgate/cmd/accessgate").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	jwks := testkit.JWKS(t, testkit.ES256(t, "dashboard-key"))
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	}))
	t.Cleanup(idp.Close)
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policy, []byte(`default_action: deny
issuers:
  - name: team
    issuer: https://team.dashboard.test
    jwks_url: `+idp.URL+`/cdn-cgi/access/certs
    login_url: https://team.dashboard.test/cdn-cgi/access/login/{host}?kid={aud}&redirect_url={redirect}
applications:
  - name: app
    domains: [dashboard.test]
    issuer: team
    audience: dashboard-aud
    policies:
      - name: staff
        action: allow
        include: [{email_domain: [example.com]}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "serve", "--config", policy, "--grpc-addr", grpcAddr, "--http-addr", httpAddr)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("accessgate output:\n%s", logs.String())
		}
	})

	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 2 * time.Second}
	get := func(path string) (int, []byte, error) {
		resp, err := client.Get("http://" + httpAddr + path)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _, err := get("/readyz"); err == nil && code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("accessgate not ready within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := authv3.NewAuthorizationClient(conn).Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Scheme: "https", Host: "dashboard.test", Path: "/",
		}},
	}}); err != nil {
		t.Fatalf("Check: %v", err)
	}

	code, body, err := get("/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("/metrics: %d %v", code, err)
	}
	series := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s`)
	families := map[string]map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		m := series.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if families[m[1]] == nil {
			families[m[1]] = map[string]bool{}
		}
		for _, l := range regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`).FindAllStringSubmatch(m[2], -1) {
			families[m[1]][l[1]] = true
		}
	}
	if len(families) == 0 {
		t.Fatalf("no metrics parsed from:\n%s", body)
	}
	return families
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr())
}
