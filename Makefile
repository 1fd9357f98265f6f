# Mercato: every day-to-day command. `make` (or `make help`) lists the targets.
# GNU make; the recipes are bash. Everything a target needs beyond a Rust toolchain and
# Python 3 is installed into .tools/ (no root) or started by scripts/dev-infra.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# One target folder for every checkout and tool (the Docker build has its own).
CARGO_TARGET_DIR ?= $(HOME)/.cache/mercato/target
export CARGO_TARGET_DIR

# The servers `make run` and `make test` use; scripts/dev-infra starts local ones when these
# do not answer. The testkit and scripts/run read the same variables.
DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
REDIS_URL ?= redis://127.0.0.1:6379
NATS_URL ?= nats://127.0.0.1:4222
export DATABASE_URL REDIS_URL NATS_URL

# buf, grpcurl, kubectl, … from scripts/install-tools.
export PATH := $(CURDIR)/.tools/bin:$(PATH)

# Deployable binaries: one per services/<name>, plus the edge gateway once it exists.
SERVICES := $(sort $(notdir $(patsubst %/Cargo.toml,%,$(wildcard services/*/Cargo.toml))))
BINARIES := $(SERVICES) $(if $(wildcard edge-gateway/Cargo.toml),edge-gateway)

.PHONY: help tools infra infra-down build fmt lint nextest unit manifests openapi smoke test run \
        clean-run load images kind-up deploy bench

help: ## List the targets
	@echo "Mercato — make <target>"
	@echo
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) \
	  | awk 'BEGIN { FS = ":.*## " } { printf "  %-12s %s\n", $$1, $$2 }'
	@echo
	@echo "Servers: DATABASE_URL=$(DATABASE_URL) REDIS_URL=$(REDIS_URL) NATS_URL=$(NATS_URL)"
	@echo "Cargo target folder: $(CARGO_TARGET_DIR)"

tools: ## Install buf, grpcurl, kubectl and validators into .tools/ (idempotent)
	scripts/install-tools

infra: ## Reuse or start Postgres, Redis and NATS JetStream (scripts/dev-infra up)
	scripts/dev-infra up

infra-down: ## Stop the servers `make infra` started (never a reused one)
	scripts/dev-infra down

build: ## Build every binary of the workspace (debug)
	cargo build --workspace --bins

fmt: ## Format the Rust sources
	cargo fmt --all

lint: tools ## rustfmt check, clippy -D warnings, buf lint
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	@# Alone, the gateway builds the kernel with no storage feature and the basket with Redis
	@# only; a workspace build turns every feature on and would hide a missing cfg.
	cargo clippy -p edge-gateway -- -D warnings
	cargo clippy -p basket -- -D warnings
	cd proto && buf lint

# cargo-nextest runs the tests; a machine without it gets it once from crates.io.
nextest:
	@cargo nextest --version >/dev/null 2>&1 || cargo install cargo-nextest --locked

unit: nextest infra ## Unit and integration tests only (cargo nextest, real servers)
	cargo nextest run --workspace --no-fail-fast

manifests: ## Validate the Kubernetes manifests offline
	scripts/validate-manifests

openapi: tools ## Validate the gateway's OpenAPI document (OpenAPI 3.1, every annotated RPC)
	scripts/openapi-check

smoke: tools infra ## Start the checkout services and the gateway; grpcurl, curl and the Python client
	scripts/grpcurl-smoke

test: tools infra nextest ## What CI runs: lint, tests, manifests, OpenAPI, end-to-end smoke test
	$(MAKE) lint
	cargo nextest run --workspace --no-fail-fast
	$(MAKE) manifests
	$(MAKE) openapi
	scripts/grpcurl-smoke

# Instances of every service `make run` starts (`make run REPLICAS=2`); the gateway runs once.
REPLICAS ?= 1
export REPLICAS

run: tools infra ## Build and start every service locally (REPLICAS=N: N instances of each; Ctrl-C stops all)
	cargo build --bins $(addprefix -p ,$(BINARIES))
	scripts/run

# Arguments of `make load` (loadgen --help, docs/loadgen.md), e.g. LOAD_ARGS="--rate 20 --duration 30s".
LOAD_ARGS ?=

load: ## Shoppers through `make run`'s gateway (release loadgen; LOAD_ARGS="--rate 20 --duration 30s")
	cargo build --release -p loadgen
	"$(CARGO_TARGET_DIR)/release/loadgen" $(LOAD_ARGS)

clean-run: infra-down ## Stop the local servers, then remove .run/ (logs, dev JWT key, server data)
	rm -rf .run

images: ## Build the service images (no attestations) and load them into kind as one archive
	scripts/kind-images

kind-up: ## Create the local kind cluster (needs Docker and kind v0.30.0, see k8s/kind-cluster.yaml)
	scripts/kind-up

deploy: ## Deploy to the kind cluster and wait for every workload
	scripts/deploy

bench: ## Run the benchmarks (results go to docs/benchmarks.md)
	@if [[ -x scripts/bench ]]; then scripts/bench; \
	 else echo "bench: no benchmarks yet (scripts/bench does not exist); see docs/benchmarks.md"; fi
