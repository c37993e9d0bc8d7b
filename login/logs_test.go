package login

import (
	"net/http"
	"strings"
	"testing"

	"github.com/accessgate/accessgate/login/internal/logintest"
	"github.com/oauth2-proxy/mockoidc"
)

// TestLogsHoldNoSecrets runs whole sign-ins, an org-session transfer, a
// refusal, get-identity and logout with debug logging, then scans every
// log line for each cookie value, state, provider code and transfer code
// the browser saw (contract §8 *(2.1)*: no log line holds one).
func TestLogsHoldNoSecrets(t *testing.T) {
	m := startMock(t, nil)
	m.QueueUser(&mockoidc.MockUser{Subject: "s", Email: "carol@example.com", EmailVerified: true})
	e := newEnv(t, logintest.Config{Providers: []logintest.Provider{mockProvider("corp", m, "")}})
	b := e.browser()
	b.signIn()
	// The org session: a transfer without the provider.
	resp := b.team(loginPath("other.example.com", "other-aud", "/", "https://other.example.com"))
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("org-session login: status %d", resp.StatusCode)
	}
	b.seen = append(b.seen, resp.Header.Get("Location"))
	b.team(pathIdentity)
	// A refused callback: a state that does not match.
	b2 := e.browser()
	resp = b2.team(loginPath("app.example.com", "app-aud", "/", "https://app.example.com"))
	cb := b2.provider(resp.Header.Get("Location"))
	b2.team(strings.Replace(cb, "state=", "state=x", 1))
	b.team(pathLogout)

	logs := e.logText()
	if !strings.Contains(logs, "sign-in transferred") || !strings.Contains(logs, "state_mismatch") {
		t.Fatalf("the scan found no sign-in lines to scan:\n%s", logs)
	}
	seen := append(b.seen, b2.seen...)
	if len(seen) < 6 {
		t.Fatalf("only %d secret values collected", len(seen))
	}
	for _, v := range seen {
		if len(v) < 8 {
			continue // nothing this short is a secret value
		}
		// Any 16 characters of it give it away: a prefix, the middle
		// and the end are checked, not only the whole value.
		for _, at := range []int{0, len(v)/2 - 8, len(v) - 16} {
			if at < 0 || at+16 > len(v) {
				continue
			}
			if part := v[at : at+16]; strings.Contains(logs, part) {
				t.Errorf("a log line holds part of a secret value (%q):\n%s", part, logs)
				break
			}
		}
	}
	for _, word := range []string{"code=", "eyJ", testNonce} {
		if strings.Contains(logs, word) {
			t.Errorf("logs hold %q:\n%s", word, logs)
		}
	}
}
