# Sessionwarden: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
BROKER := $(PY) infra/kafka/broker.py
PYTEST_ARGS ?=
PG_BINDIR ?= /usr/lib/postgresql/15/bin
CHROMIUM ?= /usr/bin/chromium
NGINX ?= /usr/sbin/nginx
CACHE ?= $(or $(SESSIONWARDEN_CACHE),$(HOME)/.cache/sessionwarden)
SSF_RECEIVER := $(CACHE)/interop/ssf-receiver
BENCH_ARGS ?=

.PHONY: help venv lint fmt test unit integration faults kafka-up kafka-down kafka-status schemas settings-doc demo bench bench-quick clean
.PHONY: kafka-secure-up kafka-secure-down postgres-deps browser nginx bench-peers
.PHONY: drill ssf-interop keycloak keycloak-up keycloak-down
DRILL_SESSIONS ?= 50
DRILL_ARGS ?=

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required; set PYTHON=/path/to/python3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

venv: $(STAMP) ## create the virtualenv and install the project with its dev tools

lint: $(STAMP) ## ruff (lint + format check), mypy --strict, and the layering contracts (lint-imports)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	PYTHONPATH=streams:. $(VENV)/bin/lint-imports --no-logo
	@if command -v promtool >/dev/null; then \
		promtool check rules infra/prometheus/alerts.yml && \
		(cd infra/prometheus && promtool test rules alerts_test.yml); \
	else echo "promtool not installed: alert rules checked by tests/unit/infra only"; fi

fmt: $(STAMP) ## format the code with ruff
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: $(STAMP) kafka-up postgres-deps browser nginx ssf-interop keycloak lint ## install, start Kafka if needed, lint, run the whole test suite
	$(PY) -m pytest --durations=25 $(PYTEST_ARGS)

unit: $(STAMP) ## unit tests only (no broker)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration: $(STAMP) kafka-up postgres-deps ssf-interop ## integration tests only (real broker)
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

faults: $(STAMP) kafka-up ## fault tests only (own clusters: broker outage, coordinator failover, kill)
	$(PY) -m pytest -m faults tests/integration $(PYTEST_ARGS)

kafka-up: $(STAMP) ## start the local Apache Kafka broker (no-op when it is up)
	$(BROKER) up

kafka-down: $(STAMP) ## stop the local broker and remove its data
	$(BROKER) down

kafka-status: $(STAMP) ## say whether the broker answers
	$(BROKER) status

kafka-secure-up: $(STAMP) ## start a second, secured broker (SASL_SSL, ACLs) on 127.0.0.1:9192
	$(PY) infra/kafka/secure.py up

kafka-secure-down: $(STAMP) ## stop the secured broker and remove its data and secrets
	$(PY) infra/kafka/secure.py down

schemas: $(STAMP) ## regenerate the JSON Schema files in schemas/json/
	$(PY) -m sessionwarden.contracts.jsonschema

settings-doc: $(STAMP) ## regenerate docs/SETTINGS.md from the settings model
	$(PY) -m sessionwarden.config.reference

DEMO_ARGS ?=
demo: $(STAMP) ## run the enforcer on a local broker with simulated traffic (Ctrl-C stops all); DEMO_ARGS=--keycloak adds a real Keycloak
	$(PY) -m sessionwarden.audit.demo $(DEMO_ARGS)

# The benchmark's peers: Quix Streams in its own venv (its pins exclude ours: pydantic-settings
# <2.16), the Kafka Streams job built by Maven from Maven Central.
QUIX_STAMP := bench/.venv-quix/.installed
KSTREAMS_JAR := bench/kstreams/target/kstreams-peer.jar

$(QUIX_STAMP): bench/quix-requirements.txt
	@test -x bench/.venv-quix/bin/python || $(PYTHON) -m venv bench/.venv-quix
	bench/.venv-quix/bin/python -m pip install -q --disable-pip-version-check -r $<
	@touch $@

$(KSTREAMS_JAR): bench/kstreams/pom.xml $(wildcard bench/kstreams/src/main/java/io/sessionwarden/bench/*.java)
	cd bench/kstreams && mvn -B -q package

bench-peers: $(QUIX_STAMP) $(KSTREAMS_JAR) ## install Quix Streams and build the Kafka Streams job for the bench

bench: $(STAMP) kafka-up postgres-deps browser nginx keycloak bench-peers ## all benchmarks at default sizes (~25 min with the peers): bench/results/<time>.{json,md,png}
	$(PY) -m bench.run $(BENCH_ARGS)

bench-quick: $(STAMP) kafka-up postgres-deps browser nginx keycloak bench-peers ## the benchmarks at smoke-test sizes
	$(PY) -m bench.run --quick $(BENCH_ARGS)

# Tests, benchmarks and the demo start throwaway clusters from these binaries; the Debian
# package's own cluster is not wanted (create_main_cluster = false, set before it is installed).
postgres-deps: ## install the PostgreSQL 15 server with apt-get when $(PG_BINDIR) lacks it
	@test -x $(PG_BINDIR)/initdb || { \
	  command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] || { \
	    echo "PostgreSQL 15 is missing: install postgresql-15 (or set PG_BINDIR and SESSIONWARDEN_PG_BINDIR)" >&2; exit 1; }; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -q && apt-get install -y -q --no-install-recommends postgresql-common && \
	  sed -ri 's/^#?\s*(create_main_cluster)\s*=.*$$/\1 = false/' /etc/postgresql-common/createcluster.conf && \
	  apt-get install -y -q --no-install-recommends postgresql-15; }

browser: ## install Debian's chromium for the browser tests (apt-get, needs root) when it is missing
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium with apt-get"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } \
		|| { echo "apt-get could not install chromium: the browser tests will skip" >&2; \
		     if [ "$$CI" = true ]; then exit 1; fi; }; \
	else \
		echo "chromium not found at $(CHROMIUM) and cannot be installed here (needs root and apt-get): the browser tests will skip" >&2; \
		if [ "$$CI" = true ]; then exit 1; fi; \
	fi

ssf-interop: ## build the independent SSF receiver (SGNL's caep.dev secevent, Go) the interop test runs
	@command -v go >/dev/null || { echo "go is not installed: the SSF interop test is skipped"; exit 0; }; \
	cd tests/interop/ssf-receiver && GOFLAGS=-mod=mod GOMODCACHE=$(CACHE)/go/mod go build -o $(SSF_RECEIVER) . && echo "built $(SSF_RECEIVER)"

nginx: ## install Debian's nginx for the gateway tests (apt-get, needs root) when it is missing
	@if [ -x $(NGINX) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing nginx with apt-get"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null; } \
		|| { echo "apt-get could not install nginx: the gateway tests will skip" >&2; \
		     if [ "$$CI" = true ]; then exit 1; fi; }; \
	else \
		echo "nginx not found at $(NGINX) and cannot be installed here (needs root and apt-get): the gateway tests will skip" >&2; \
		if [ "$$CI" = true ]; then exit 1; fi; \
	fi

# Keycloak 26.7.3 from Maven Central with Sessionwarden's event listener, built once into the
# cache (infra/keycloak/keycloak.py). Under CI=true a failure fails the run; elsewhere the tests
# that need Keycloak skip with the reason.
keycloak: $(STAMP) ## fetch Keycloak, build the event listener (Maven) and the cached built copy
	@$(PY) infra/keycloak/keycloak.py build || { \
	  if [ "$$CI" = true ]; then exit 1; fi; \
	  echo "Keycloak could not be built here: the Keycloak tests will skip" >&2; }

keycloak-up: $(STAMP) kafka-up ## start Keycloak (realm "demo") publishing to the local broker; state in .keycloak/
	$(PY) infra/keycloak/keycloak.py up

keycloak-down: $(STAMP) ## stop the Keycloak keycloak-up started and remove its data
	$(PY) infra/keycloak/keycloak.py down

drill: $(STAMP) kafka-up postgres-deps browser nginx ## sessions past their deadlines through HTTP, WebSocket, PostgreSQL, browser, nginx, SSF relying parties: audit in .drill/
	$(PY) -m sessionwarden drill --sessions $(DRILL_SESSIONS) --gateway --ssf $(DRILL_ARGS)

clean: ## remove the virtualenv and caches (not the broker)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
