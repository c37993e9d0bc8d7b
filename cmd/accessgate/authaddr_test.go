package main

import (
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// askForward sends a Traefik-style auth request for app.example.com/x with
// the demo token to /auth/forward on addr.
func askForward(t *testing.T, client *http.Client, base, token string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest("GET", base+"/auth/forward", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Forwarded-Method", "GET")
	req.Header.Set("X-Forwarded-Host", "app.example.com")
	req.Header.Set("X-Forwarded-Uri", "/reports?q=1")
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("Cookie", "CF_Authorization="+token)
	resp, err := client.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	return resp, err
}

// TestServeAuthAddr: --auth-addr (here through its variable) serves the
// HTTP endpoints with the live engine, counts their decisions with the
// endpoint label, and stops with serve.
func TestServeAuthAddr(t *testing.T) {
	d := demoDir(t)
	addr := freeAddr(t)
	s := startServe(t, loopbackEnv(map[string]string{"ACCESSGATE_AUTH_ADDR": addr}), "--config", d.policy)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

	resp, err := askForward(t, client, "http://"+addr, d.token)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Cf-Access-Authenticated-User-Email") == "" {
		t.Fatalf("/auth/forward: %d, user email %q; want 200 with the identity", resp.StatusCode, resp.Header.Get("Cf-Access-Authenticated-User-Email"))
	}
	for _, tt := range []struct {
		series string
		want   float64
	}{
		{`accessgate_decisions_total{application="dashboard",endpoint="auth/forward",reason="allowed"}`, 1},
		{`accessgate_decisions_total{application="dashboard",endpoint="grpc",reason="allowed"}`, -1},
		{`accessgate_check_duration_seconds_count{endpoint="auth/forward"}`, 1},
		{`accessgate_check_duration_seconds_count{endpoint="auth/nginx"}`, 0},
	} {
		if v := s.metric(tt.series); v != tt.want {
			t.Errorf("%s = %v, want %v", tt.series, v, tt.want)
		}
	}
	if !strings.Contains(s.stderr.String(), `"auth_addr":"`+addr+`"`) {
		t.Errorf("no start line names the auth address %s:\n%s", addr, s.stderr)
	}
	if code := s.stop(); code != exitOK {
		t.Errorf("serve exited %d, want 0", code)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Errorf("%s still accepts after serve stopped", addr)
	}
}

// TestServeAuthAddrFlagAndDefault: the flag beats the variable, and
// without either no auth listener starts.
func TestServeAuthAddrFlagAndDefault(t *testing.T) {
	d := demoDir(t)
	envAddr, flagAddr := freeAddr(t), freeAddr(t)
	s := startServe(t, loopbackEnv(map[string]string{"ACCESSGATE_AUTH_ADDR": envAddr}), "--config", d.policy, "--auth-addr", flagAddr)
	if !strings.Contains(s.stderr.String(), `"auth_addr":"`+flagAddr+`"`) {
		t.Errorf("auth listener not on the flag's %s:\n%s", flagAddr, s.stderr)
	}
	s.stop()

	off := startServe(t, loopbackEnv(nil), "--config", d.policy)
	if strings.Contains(off.stderr.String(), "auth endpoints listening") {
		t.Errorf("an auth listener started without --auth-addr:\n%s", off.stderr)
	}
}

// TestServeAuthAddrMutualTLS: with --tls-cert, --tls-key and --client-ca
// the auth listener requires a client certificate from the CA, and still
// offers HTTP/2.
func TestServeAuthAddrMutualTLS(t *testing.T) {
	d := demoDir(t)
	p := newPKI(t)
	addr := freeAddr(t)
	startServe(t, loopbackEnv(nil), "--config", d.policy, "--auth-addr", addr,
		"--tls-cert", p.certFile, "--tls-key", p.keyFile, "--client-ca", p.caFile)
	for _, tt := range []struct {
		name   string
		certs  []tls.Certificate
		wantOK bool
	}{
		{"client certificate from the CA", []tls.Certificate{p.client}, true},
		{"no client certificate", nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: p.clientTLS(tt.certs...), ForceAttemptHTTP2: true, DisableKeepAlives: true}
			defer tr.CloseIdleConnections()
			resp, err := askForward(t, &http.Client{Transport: tr, Timeout: 10 * time.Second}, "https://"+addr, d.token)
			if !tt.wantOK {
				if err == nil {
					t.Errorf("answered %d without a client certificate, want the handshake refused", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
				t.Errorf("over mTLS: %s %d, want HTTP/2 200", resp.Proto, resp.StatusCode)
			}
		})
	}
	// Plain HTTP on the TLS port gets no decision.
	resp, err := askForward(t, &http.Client{Timeout: 10 * time.Second}, "http://"+addr, d.token)
	if err == nil && resp.StatusCode == 200 {
		t.Error("plain HTTP answered 200 on the mTLS listener")
	}
}
