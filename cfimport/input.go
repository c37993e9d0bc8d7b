package cfimport

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// The Cloudflare API's JSON shapes, as its API, its Go SDK (cloudflare-go)
// and its Terraform provider publish them. Every object is also kept whole
// (raw) so that the report can name each setting that was not carried
// over, including ones this importer has never heard of.

type rawObject map[string]json.RawMessage

// application is an Access application (GET /accounts/{id}/access/apps).
type application struct {
	ID                     string        `json:"id"`
	Name                   string        `json:"name"`
	AUD                    string        `json:"aud"`
	Type                   string        `json:"type"`
	Domain                 string        `json:"domain"`
	SelfHostedDomains      []string      `json:"self_hosted_domains"`
	Destinations           []destination `json:"destinations"`
	CORSHeaders            *corsHeaders  `json:"cors_headers"`
	OptionsPreflightBypass bool          `json:"options_preflight_bypass"`
	// Policies are policies returned in full (inline or reusable), objects
	// naming a reusable policy by id ({"id": …, "precedence": …}), or bare
	// ids (Terraform).
	Policies []json.RawMessage `json:"policies"`

	raw rawObject
}

type destination struct {
	Type string `json:"type"`
	URI  string `json:"uri"`
	// Private destinations (hostname, cidr, port_range…) are not imported.
	Hostname string `json:"hostname"`
	CIDR     string `json:"cidr"`
}

type corsHeaders struct {
	AllowedOrigins   []string `json:"allowed_origins"`
	AllowedMethods   []string `json:"allowed_methods"`
	AllowedHeaders   []string `json:"allowed_headers"`
	AllowAllOrigins  bool     `json:"allow_all_origins"`
	AllowAllMethods  bool     `json:"allow_all_methods"`
	AllowAllHeaders  bool     `json:"allow_all_headers"`
	AllowCredentials bool     `json:"allow_credentials"`
	MaxAge           *int     `json:"max_age"`
}

func (c *corsHeaders) empty() bool {
	return c == nil || len(c.AllowedOrigins) == 0 && len(c.AllowedMethods) == 0 && len(c.AllowedHeaders) == 0 &&
		!c.AllowAllOrigins && !c.AllowAllMethods && !c.AllowAllHeaders && !c.AllowCredentials && c.MaxAge == nil
}

// policy is an Access policy (inline in an application, or reusable:
// GET /accounts/{id}/access/policies).
type policy struct {
	ID                           string  `json:"id"`
	Name                         string  `json:"name"`
	Decision                     string  `json:"decision"`
	Precedence                   *int    `json:"precedence"`
	Reusable                     bool    `json:"reusable"`
	Include                      []rule  `json:"include"`
	Require                      []rule  `json:"require"`
	Exclude                      []rule  `json:"exclude"`
	ApprovalRequired             bool    `json:"approval_required"`
	PurposeJustificationRequired bool    `json:"purpose_justification_required"`
	IsolationRequired            bool    `json:"isolation_required"`
	SessionDuration              *string `json:"session_duration"`

	raw rawObject
}

// rule is one include/require/exclude rule: an object with one key, the
// rule type, whose value holds the rule's fields.
type rule struct {
	Type   string
	Fields map[string]any
}

func (r *rule) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	if len(m) != 1 {
		return fmt.Errorf("a rule is an object with one key (its type), not %d keys", len(m))
	}
	for k, v := range m {
		r.Type = k
		r.Fields = map[string]any{}
		if err := json.Unmarshal(v, &r.Fields); err != nil && !bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			return fmt.Errorf("rule %s: %w", k, err)
		}
	}
	return nil
}

// field returns a string field of the rule ("" when absent or not a
// string).
func (r *rule) field(name string) string {
	s, _ := r.Fields[name].(string)
	return s
}

// group is an Access group (GET /accounts/{id}/access/groups).
type group struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Include []rule `json:"include"`
	Require []rule `json:"require"`
	Exclude []rule `json:"exclude"`
}

// serviceToken is an Access service token
// (GET /accounts/{id}/access/service_tokens); the API never returns secrets.
type serviceToken struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	ClientID  string `json:"client_id"`
	ExpiresAt string `json:"expires_at"`
}

// items returns the objects of an API response: a {"result": [...]}
// envelope (or {"result": {...}} for one object), or a bare array.
func items(data []byte) ([]json.RawMessage, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, errors.New("empty file")
	}
	var list []json.RawMessage
	if data[0] == '[' {
		if err := json.Unmarshal(data, &list); err != nil {
			return nil, err
		}
		return list, nil
	}
	var env struct {
		Result  json.RawMessage `json:"result"`
		Success *bool           `json:"success"`
		Errors  []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, err
	}
	if env.Success != nil && !*env.Success {
		msg := "the API reported success: false"
		if len(env.Errors) > 0 {
			msg += ": " + env.Errors[0].Message
		}
		return nil, errors.New(msg)
	}
	res := bytes.TrimSpace(env.Result)
	switch {
	case len(res) == 0 || bytes.Equal(res, []byte("null")):
		return nil, errors.New(`want a "result" list or a bare JSON array`)
	case res[0] == '{':
		return []json.RawMessage{res}, nil
	}
	if err := json.Unmarshal(res, &list); err != nil {
		return nil, fmt.Errorf("result: %w", err)
	}
	return list, nil
}

// decodeAll decodes every item into T, keeping each object whole too when
// keep is set.
func decodeAll[T any](data []byte, what string, keep func(*T, rawObject)) ([]*T, error) {
	list, err := items(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out := make([]*T, 0, len(list))
	for i, it := range list {
		v := new(T)
		if err := json.Unmarshal(it, v); err != nil {
			return nil, fmt.Errorf("%s: item %d: %w", what, i, err)
		}
		if keep != nil {
			var raw rawObject
			if err := json.Unmarshal(it, &raw); err != nil {
				return nil, fmt.Errorf("%s: item %d: %w", what, i, err)
			}
			keep(v, raw)
		}
		out = append(out, v)
	}
	return out, nil
}
