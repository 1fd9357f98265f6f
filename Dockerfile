# syntax=docker/dockerfile:1
#
# One image per service, from one file:
#   docker build --build-arg SERVICE=catalog -t mercato/catalog:dev .
# SERVICE is the service's folder, package and binary name (services/<SERVICE>, or
# edge-gateway). The result is a static musl binary on distroless/static, running as uid 65532.
# Needs BuildKit (the default builder since Docker 23) for the cache mounts.

# The workspace's rust-version (Cargo.toml): the lockfile resolves for it. Bump both together.
ARG RUST_VERSION=1.89

FROM rust:${RUST_VERSION}-bookworm AS builder
# musl-gcc for the C parts of dependencies (ring); no protoc (protox compiles the protos) and
# no libpq (diesel-async talks to Postgres through tokio-postgres). The version is bookworm's.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
# ring's C code is compiled with musl-gcc for either musl target.
ENV CC_x86_64_unknown_linux_musl=musl-gcc \
    CC_aarch64_unknown_linux_musl=musl-gcc
# The host's own architecture (amd64 or arm64, e.g. kind on an Apple Silicon Mac).
ARG TARGETARCH
RUN case "${TARGETARCH:-$(dpkg --print-architecture)}" in \
      amd64) triple=x86_64-unknown-linux-musl ;; \
      arm64) triple=aarch64-unknown-linux-musl ;; \
      *) echo "unsupported architecture: ${TARGETARCH}" >&2; exit 1 ;; \
    esac \
 && rustup target add "$triple" \
 && echo "$triple" > /rust-target

WORKDIR /src
COPY . .

ARG SERVICE
# The registry, git checkouts and target dir live in BuildKit caches, so dependencies compile
# once and every later image (any SERVICE) only rebuilds what changed. musl targets link
# statically by default (crt-static). The binary leaves the cache for one fixed path, so a
# single ENTRYPOINT serves every service.
RUN --mount=type=cache,id=mercato-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=mercato-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=mercato-target,target=/src/target,sharing=locked \
    set -eu; \
    if [ -z "${SERVICE:-}" ]; then \
      echo "missing --build-arg SERVICE=<name> (a folder under services/, or edge-gateway)" >&2; \
      exit 1; \
    fi; \
    triple="$(cat /rust-target)"; \
    cargo build --release --locked --target "$triple" -p "$SERVICE" --bin "$SERVICE"; \
    mkdir -p /out; \
    cp "target/$triple/release/$SERVICE" /out/service

# distroless/static: CA certificates, tzdata, /etc/passwd with `nonroot` (65532), no shell.
FROM gcr.io/distroless/static-debian12:nonroot
ARG SERVICE
LABEL org.opencontainers.image.title="mercato-${SERVICE}" \
      org.opencontainers.image.description="Mercato ${SERVICE} service" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/service /usr/local/bin/mercato-service
# The addresses the Kubernetes manifests use; `docker run -p 50051:50051 -p 9090:9090` works too.
ENV MERCATO_GRPC_ADDR=0.0.0.0:50051 \
    MERCATO_ADMIN_ADDR=0.0.0.0:9090 \
    MERCATO_LOG_FORMAT=json
USER 65532:65532
EXPOSE 50051 9090
ENTRYPOINT ["/usr/local/bin/mercato-service"]
