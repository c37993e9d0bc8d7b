# syntax=docker/dockerfile:1
# accessgate: static binary on distroless, running as nonroot (uid 65532).
#   docker build -t accessgate .
#   docker run --rm -p 127.0.0.1:9001:9001 -p 127.0.0.1:9090:9090 accessgate   # demo mode
#   docker run --rm -v "$PWD/policy:/etc/accessgate:ro" -e ACCESSGATE_CONFIG=/etc/accessgate/policy.yaml ... accessgate
FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first, so source edits reuse the module cache layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# docker build --build-arg VERSION=v1.2.3 . stamps `accessgate version`.
ARG VERSION=
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/accessgate ./cmd/accessgate

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/accessgate /usr/local/bin/accessgate
USER nonroot:nonroot
# In a container, listen on every interface (the binary's defaults are
# loopback). Without ACCESSGATE_CONFIG (or --config) it runs the built-in
# demo configuration; deployments set ACCESSGATE_CONFIG to a mounted folder.
ENV ACCESSGATE_GRPC_ADDR=0.0.0.0:9001 \
    ACCESSGATE_HTTP_ADDR=0.0.0.0:9090
# 9001: ext_authz gRPC (and grpc.health.v1); 9090: /healthz /readyz /metrics.
EXPOSE 9001 9090
ENTRYPOINT ["/usr/local/bin/accessgate", "serve"]
