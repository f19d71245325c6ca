# The two commands of the quick start are `make demo` and `make test`; both set up what they need.
SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help setup demo test test-unit test-integration test-contract test-infra bench lint up soak \
        model-server reference build validate clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

setup:  ## create .venv and .venv-tools, install everything, fetch the models (idempotent)
	@scripts/setup.sh

demo: setup  ## run the whole pipeline offline on the embedded local stack
	$(BIN)/s3kp demo

test: setup  ## the whole suite: unit, integration, contract, infra
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: setup  ## unit tests only
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test-integration: setup  ## integration tests against real local servers
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

test-contract: setup  ## the official Roboflow clients against the local inference server
	$(BIN)/pytest tests/contract $(PYTEST_ARGS)

test-infra: setup  ## template checks: sam validate --lint, cfn-lint, sam build, checkov
	$(BIN)/pytest tests/infra $(PYTEST_ARGS)

bench: setup  ## benchmarks; writes docs/benchmarks.md
	$(BIN)/python -m benchmarks

lint: setup  ## ruff and mypy (strict, on everything pyproject's [tool.mypy] lists)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

audit: setup  ## pins vs the minimum-safe-version table, then pip-audit (says plainly when it could not audit)
	$(BIN)/python scripts/audit.py

up: setup  ## start the offline stack (AWS on :4566, inference on :9001, HTTP API on :3000)
	$(BIN)/s3kp up

model-server: setup  ## start only the local inference server on :9001
	$(BIN)/s3kp model-server

reference: setup  ## regenerate tests/fixtures/mediapipe_reference.json with mediapipe's own API
	$(BIN)/python scripts/make_mediapipe_reference.py

build: setup  ## sam build (copies the model files into the models layer; python3.12 found on PATH or under pyenv)
	$(BIN)/python -m s3kp.samtools build

validate: setup  ## sam validate --lint
	$(BIN)/python -m s3kp.samtools validate

clean:  ## remove environments, caches and build output
	rm -rf $(VENV) .venv-tools .venv-clients .cache .aws-sam .pytest_cache .mypy_cache .ruff_cache \
	  layers/models/s3kp_models/model_files

soak: setup  ## fault and soak run: a flaky endpoint, a killed worker, a 429 storm, a 10-min outage, a 401 phase (~25 min)
	$(BIN)/python -m s3kp.local.soak --write-docs $(SOAK_ARGS)
