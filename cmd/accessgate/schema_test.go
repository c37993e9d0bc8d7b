package main

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/accessgate/accessgate/policies"
)

func TestSchemaCommand(t *testing.T) {
	code, out, errOut := runCLI(t, nil, "schema")
	if code != 0 || errOut != "" || !bytes.Equal([]byte(out), policies.Schema()) {
		t.Fatalf("schema: exit %d, stderr %q, stdout is not policies.Schema()", code, errOut)
	}
	var doc struct {
		Schema string         `json:"$schema"`
		Defs   map[string]any `json:"$defs"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.Schema != "https://json-schema.org/draft/2020-12/schema" || doc.Defs["application"] == nil {
		t.Errorf("schema output: %v, $schema %q, $defs %d", err, doc.Schema, len(doc.Defs))
	}
	if code, _, _ := runCLI(t, nil, "schema", "extra"); code != 2 {
		t.Errorf("schema extra: exit %d, want 2", code)
	}
}
