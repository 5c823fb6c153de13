# Sessionwarden: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
BROKER := $(PY) infra/kafka/broker.py
PYTEST_ARGS ?=

.PHONY: help venv lint fmt test unit integration kafka-up kafka-down kafka-status schemas demo bench bench-quick clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required; set PYTHON=/path/to/python3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

venv: $(STAMP) ## create the virtualenv and install the project with its dev tools

lint: $(STAMP) ## ruff (lint + format check) and mypy --strict on streams/ and schemas/
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy streams schemas
	@if command -v promtool >/dev/null; then \
		promtool check rules infra/prometheus/alerts.yml && \
		(cd infra/prometheus && promtool test rules alerts_test.yml); \
	else echo "promtool not installed: alert rules checked by tests/unit/infra only"; fi

fmt: $(STAMP) ## format the code with ruff
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: $(STAMP) kafka-up lint ## install, start Kafka if needed, lint, run the whole test suite
	$(PY) -m pytest $(PYTEST_ARGS)

unit: $(STAMP) ## unit tests only (no broker)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration: $(STAMP) kafka-up ## integration tests only (real broker)
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

kafka-up: $(STAMP) ## start the local Apache Kafka broker (no-op when it is up)
	$(BROKER) up

kafka-down: $(STAMP) ## stop the local broker and remove its data
	$(BROKER) down

kafka-status: $(STAMP) ## say whether the broker answers
	$(BROKER) status

schemas: $(STAMP) ## regenerate the JSON Schema files in schemas/json/
	$(PY) -m schemas.jsonschema

demo: $(STAMP) ## run the enforcer on a local broker with simulated traffic (Ctrl-C stops all)
	$(PY) -m streams.demo

bench: $(STAMP) kafka-up ## all benchmarks at default sizes (~15 min): bench/results/<time>.{json,md,png}
	$(PY) -m bench.run

bench-quick: $(STAMP) kafka-up ## the benchmarks at smoke-test sizes
	$(PY) -m bench.run --quick

clean: ## remove the virtualenv and caches (not the broker)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
