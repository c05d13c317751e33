# Everything a fresh machine needs goes through these targets; see README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt
DEMO_ROOT := examples/models
# `make run` serves a copy of the demo models: pushes and the feedback outbox write into
# the model root, and must never write into the git work tree.
STATE ?= .state
RUN_ROOT := $(STATE)/models
SHM_APPS := $(STATE)/shm-apps
HOST ?= 127.0.0.1
GRPC_PORT ?= 50051
HTTP_PORT ?= 8080
NODE_DEPS := tests/node/node_modules/.installed

.PHONY: help venv venv-dev run test test-fast postgres-server haproxy-bin prometheus-bin chromium-bin lint typecheck proto proto-check proto-lint demo-model bench arm64-smoke arm64-image wheel-e2e clean

help:  ## list targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q --upgrade "pip>=24" "setuptools>=69" wheel

$(VENV)/.runtime: $(BIN)/python setup.cfg constraints.txt pyproject.toml
	$(PIP) -e .
	touch $@

# torch is installed first and alone: its pinned CPU wheel is on the machine's disk.
$(VENV)/.dev: $(VENV)/.runtime
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev,tools,cloud]'
	touch $@

venv: $(VENV)/.runtime  ## runtime-only virtualenv

venv-dev: $(VENV)/.dev  ## virtualenv with dev and tools extras

$(RUN_ROOT):
	mkdir -p $(STATE)
	cp -R $(DEMO_ROOT) $(RUN_ROOT).tmp && mv $(RUN_ROOT).tmp $(RUN_ROOT)

# One shared-memory app token for this user (docs/kserve-v2.md "System shared memory").
$(SHM_APPS):
	mkdir -p $(STATE)
	umask 077 && printf 'demo %s %s\n' "$$(id -u)" "$$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" > $@.tmp && mv $@.tmp $@

run: $(VENV)/.runtime $(RUN_ROOT) $(SHM_APPS)  ## set up and serve a copy of the demo models (.state/models) on 127.0.0.1:50051 (gRPC) and :8080 (HTTP)
	$(BIN)/edge-server --model-root $(RUN_ROOT) --host $(HOST) --grpc-port $(GRPC_PORT) --http-port $(HTTP_PORT) --trusted-keys examples/keys --shared-memory-app-tokens $(SHM_APPS)

# Node.js client used by tests/e2e/edge_server/v2/test_node.py (a second language against the V2 service).
$(NODE_DEPS): tests/node/package.json tests/node/package-lock.json
	npm ci --prefix tests/node --no-audit --no-fund
	touch $@

# PostgreSQL server binaries for the orchestrator tests (Debian package `postgresql`); the
# tests start a throwaway cluster on a free port and stop it (or use EDGE_TEST_POSTGRES_URL).
postgres-server:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q postgresql; }

# HAProxy for the overload front (deploy/haproxy/, tests/e2e/edge_server/test_front_proxy.py, make bench).
haproxy-bin:
	@command -v haproxy >/dev/null 2>&1 || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q haproxy; }

# wrk drives the HTTP cells of `make bench` (benchmarks/http_face/: multipart uploads).
.PHONY: wrk-bin
wrk-bin:
	@command -v wrk >/dev/null 2>&1 || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q wrk; }

# Prometheus and promtool for deploy/prometheus (tests/e2e/deploy/). No recommends: they
# would add node-exporter, a service of its own.
prometheus-bin:
	@command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends prometheus; }

# Debian's chromium and its chromedriver for the console's browser tests
# (tests/e2e/cloud_orchestrator/console/test_browser.py, Selenium; nothing downloaded).
chromium-bin:
	@{ command -v chromium && command -v chromedriver; } >/dev/null 2>&1 || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q chromium chromium-driver; }

test: $(VENV)/.dev $(NODE_DEPS) postgres-server haproxy-bin prometheus-bin chromium-bin  ## set up and run the whole test suite
	$(BIN)/python -m pytest -q

# tests/unit: one module or class at a time, no server process, no database, no network
# beyond an in-process loopback server; a failure names a function, not a whole gateway.
test-fast: $(VENV)/.dev  ## unit tests only (tests/unit), seconds not minutes
	$(BIN)/python -m pytest -q tests/unit

lint: $(VENV)/.dev  ## ruff + mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

proto: $(VENV)/.dev  ## regenerate protobuf/gRPC code and mypy stubs into edge_contracts/proto (pinned grpcio-tools)
	$(BIN)/python protos/generate.py

proto-check: $(VENV)/.dev  ## fail when committed generated code differs from `make proto`
	$(BIN)/python protos/generate.py --check

proto-lint: $(VENV)/.dev  ## buf lint (installs the pinned buf-bin)
	$(PIP) buf-bin
	cd protos && ../$(BIN)/buf lint

demo-model: $(VENV)/.dev  ## retrain the digits demo model and rebuild examples/models reproducibly
	$(BIN)/python -m model_tools.demo --out $(DEMO_ROOT)

# The loop closed (docs/loop.md): an orchestrator and two pull gateways on loopback, hard
# examples back, fine-tune, evaluate, sign, publish, gated canary deploy. 45 s to 2 min on
# 2 cores; everything in a temporary folder. LOOP_ARGS=--json for the summary as JSON.
.PHONY: loop-demo
loop-demo: $(VENV)/.dev  ## the loop closed: hard examples from gateways -> fine-tune -> signed, gated redeploy (not part of make test)
	$(BIN)/python -m examples.loop $(LOOP_ARGS)

# h2load (Debian nghttp2-client) drives the load; without it the grpc.aio generator does.
# py-spy profiles the cells that miss a target. BENCH_ARGS=--quick for a smoke run.
bench: $(VENV)/.dev haproxy-bin wrk-bin  ## gateway vs raw ONNX Runtime benchmark -> bench-results/ (not part of make test)
	@command -v h2load >/dev/null 2>&1 || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo -n); \
	  ($$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq nghttp2-client) >/dev/null 2>&1 \
	  || echo "bench: cannot install h2load (nghttp2-client): using the grpc.aio load generator" >&2; }
	@$(PIP) py-spy >/dev/null 2>&1 || echo "bench: py-spy unavailable: no profiles" >&2
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)
	$(BIN)/python -m benchmarks.http_face $(BENCH_ARGS)
	$(BIN)/python -m benchmarks.footprint
	$(MAKE) --no-print-directory bench-fleet

# The fleet simulator (benchmarks/fleet/): simulated pull gateways, multiplexed over a few
# channels, against edge-orchestrator on SQLite (one process) and on a throwaway PostgreSQL
# (two replicas): subscribe 500/2,000/10,000, idle CPU and RSS, assign latency, a 4 MB bundle
# fetched with resume, feedback batches. FLEET_ARGS=--quick (or BENCH_ARGS=--quick): smoke run.
.PHONY: bench-fleet
bench-fleet: $(VENV)/.dev postgres-server  ## fleet scale: simulated gateways vs edge-orchestrator -> bench-results/fleet.json, fleet.md
	$(BIN)/python -m benchmarks.fleet $(BENCH_ARGS) $(FLEET_ARGS)

# The property tests (tests/unit/**/test_*_properties.py, tests/e2e/edge_server/test_http_properties.py)
# under the Hypothesis `fuzz` profile (tests/support/fuzzing.py: thousands of examples each,
# failures saved in .cache/hypothesis), then atheris (libFuzzer, coverage-guided) on the
# bundle reader and the manifest parsers for FUZZ_SECONDS each (tests/fuzz/atheris_targets.py;
# corpus and crash files in .cache/fuzz/). Long: not part of make test.
FUZZ_SECONDS ?= 300
PROPERTY_TESTS = $(wildcard tests/unit/*/test_*_properties.py tests/unit/*/*/test_*_properties.py tests/e2e/edge_server/test_*_properties.py)
.PHONY: fuzz
fuzz: $(VENV)/.dev  ## property tests with thousands of examples each, then atheris on the bundle reader and manifest parser (FUZZ_SECONDS=300 each)
	EDGE_HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q --timeout=3600 $(PROPERTY_TESTS)
	mkdir -p .cache/fuzz
	$(BIN)/python -m tests.fuzz.atheris_targets bundle -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=10 -artifact_prefix=.cache/fuzz/
	$(BIN)/python -m tests.fuzz.atheris_targets manifest -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=10 -artifact_prefix=.cache/fuzz/

# No Docker, no host binfmt_misc: a debootstrapped Debian bookworm arm64 userland (cached in
# .cache/arm64) run by qemu-aarch64-static through a private binfmt_misc in a user namespace
# (root, Linux >= 6.7; see tests/arm64/userns.py); installs qemu-user-static and debootstrap.
arm64-smoke: $(VENV)/.dev  ## the installed wheel's edge-server on emulated aarch64 (--workers 2): imports, health, reflection, Predict, /metrics
	$(BIN)/python -m tests.arm64.smoke

# The real Dockerfile.arm64, built by Debian's buildah and run by its podman (installed when
# missing) in the same kind of user namespace; no registry, so the base is a stand-in for
# python:3.11-slim-bookworm made from the smoke's userland (docs/arm64.md says what differs).
arm64-image: $(VENV)/.dev  ## build Dockerfile.arm64 (buildah) and run it (podman) on emulated arm64: HEALTHCHECK healthy, Predict
	$(BIN)/python -m tests.arm64.image

# The product as it ships, not the tree: sdist from `git archive HEAD`, wheel from the sdist,
# fresh virtualenvs outside the tree per extra, console scripts run from a neutral folder.
wheel-e2e: $(VENV)/.dev  ## installed wheel end to end: [], [tools], [cloud] venvs, gateway, model tools, rollout
	$(BIN)/python -m tests.installed.e2e

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
