// Package deploy validates the Kubernetes delivery offline: the Helm chart
// (lint, template of every ci/ value set) and every shipped manifest, each
// strictly (an unknown field is an error) against the Kubernetes API types
// and the CRD schemas of Gateway API, Envoy Gateway and Istio taken from
// their Go modules.
//
// It is its own Go module so that k8s.io/api and the CRD modules never
// enter the product's dependency graph: accessgate's go.mod stays as small
// as the binary needs. The CRD modules are not even required here; the
// test fetches them with `go mod download -json MODULE@VERSION` (the Go
// module cache makes that offline after the first time).
//
// Tools: Helm v4 and kubeconform, built by .ci/run into the repository's
// bin/ (HELM and KUBECONFORM override). With CI set a missing tool fails
// the tests; otherwise they skip.
package deploy
