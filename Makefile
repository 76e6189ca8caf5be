# Two entry points for a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The main job on embedded defaults: start the daemon, resolve demo/requirements.in from the
# public index (cold, then warm), fill the cache with the pins, and show the daemon's state.
DEMO_OUT := build/demo

demo: $(STAMP)
	@mkdir -p $(DEMO_OUT)
	$(BIN)/burrow daemon start
	$(BIN)/burrow compile demo/requirements.in -o $(DEMO_OUT)/requirements.txt
	@cat $(DEMO_OUT)/requirements.txt
	$(BIN)/burrow compile demo/requirements.in -o $(DEMO_OUT)/requirements.txt -v
	$(BIN)/burrow prefetch -r $(DEMO_OUT)/requirements.txt
	$(BIN)/burrow cache stats
	$(BIN)/burrow daemon status

test: lint
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy -p burrowd.protocol -p burrowd.client -p burrowd.daemon
	$(BIN)/mypy tests bench

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
