# Two entry points for a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench docs reliability clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The main job on embedded defaults: start the daemon, resolve demo/requirements.in from the
# public index, create a fresh venv, sync the pins into it, import them with the venv's own
# python, list what it holds, and sync again (a no-op: nothing to do).
DEMO_OUT := build/demo
DEMO_VENV := $(DEMO_OUT)/venv

demo: $(STAMP)
	@mkdir -p $(DEMO_OUT)
	$(BIN)/burrow daemon start
	$(BIN)/burrow compile demo/requirements.in -o $(DEMO_OUT)/requirements.txt
	@cat $(DEMO_OUT)/requirements.txt
	$(BIN)/burrow venv $(DEMO_VENV) --clear
	$(BIN)/burrow sync $(DEMO_OUT)/requirements.txt --python $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -c 'import flask, requests, pydantic; from importlib.metadata import version as v; print("imported", *(f"{n} {v(n)}" for n in ("flask", "requests", "pydantic")))'
	$(BIN)/burrow list --python $(DEMO_VENV)
	$(BIN)/burrow sync $(DEMO_OUT)/requirements.txt --python $(DEMO_VENV)
	$(BIN)/burrow daemon status

test: lint
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy -p burrowd.protocol -p burrowd.client -p burrowd.daemon
	$(BIN)/mypy tests bench reliability

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m bench $(BENCH_ARGS)

# Crashes (kill -9 mid-sync, mid-fill, mid-build), load and the reliability tests, on loopback
# with private daemons; writes docs/reliability.md. About 25 minutes; RELIABILITY_ARGS=--quick
# takes a few.
reliability: $(STAMP)
	$(BIN)/python -m reliability --out docs/reliability.md $(RELIABILITY_ARGS)

# The JSON-RPC API reference, generated from the protocol's structs (a test fails when stale).
docs: $(STAMP)
	$(BIN)/python -m burrowd.protocol.apidoc --write docs/rpc.md

clean:
	rm -rf $(VENV) build *.egg-info
