# qkms — two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: demo test test-fast bench system-deps clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

# Debian packages the integration tiers use (real redis-server, openssl).
system-deps:
	@command -v redis-server >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1 || \
	  ( $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q redis-server openssl )

demo: $(VENV)/.installed
	$(PY) -m qkms demo .demo

test: $(VENV)/.installed system-deps
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_etsi_roundtrip.py

clean:
	rm -rf .demo .pytest_cache build *.egg-info
