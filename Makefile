# Two commands from a fresh clone (Python 3.11 + pip only):
#   make run    install the locked server dependencies, migrate, and serve on 127.0.0.1:8700
#   make test   install the locked dev dependencies and run lint, types, contracts and every test
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
export UV_PYTHON := $(BIN)/python

.PHONY: run test lint typecheck contracts pytest pytest-fast lock install-server install-dev bench clean

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements/uv.txt

$(VENV)/.server.stamp: requirements/server.txt pyproject.toml | $(UV)
	$(UV) pip sync --quiet --require-hashes requirements/server.txt
	$(UV) pip install --quiet --no-deps -e .
	@rm -f $(VENV)/.dev.stamp; touch $@

$(VENV)/.dev.stamp: requirements/dev.txt pyproject.toml | $(UV)
	$(UV) pip sync --quiet --require-hashes requirements/dev.txt
	$(UV) pip install --quiet --no-deps -e .
	@rm -f $(VENV)/.server.stamp; touch $@

# The dev set includes the server set, so either stamp satisfies `run`.
install-server:
	@if [ ! -f $(VENV)/.dev.stamp ]; then $(MAKE) --no-print-directory $(VENV)/.server.stamp; fi
install-dev: $(VENV)/.dev.stamp

run: install-server
	$(BIN)/remit db upgrade
	$(BIN)/remit serve --init

lint: install-dev
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/codespell src tests docs README.md CHANGELOG.md

typecheck: install-dev
	$(BIN)/mypy

contracts: install-dev
	$(BIN)/lint-imports

pytest: install-dev
	$(BIN)/pytest -m "not slow"
	$(BIN)/pytest -m slow || [ $$? -eq 5 ]  # exit 5: no slow tests selected

pytest-fast: install-dev
	$(BIN)/pytest -m "not slow and not postgres" -q

test: lint typecheck contracts pytest

# Re-resolve the locks after changing dependencies in pyproject.toml.
lock: | $(UV)
	$(UV) pip compile pyproject.toml --all-extras --group dev --generate-hashes --no-emit-index-url --no-header --python-version 3.11 -o requirements/dev.txt
	$(UV) pip compile pyproject.toml --all-extras --generate-hashes --no-emit-index-url --no-header --python-version 3.11 -o requirements/server.txt

# The benchmarks print figures and ratios (HTTP parts need Debian's wrk); no timed assertions live in tests.
bench: install-dev
	$(BIN)/python bench/decide.py --seconds 4
	$(BIN)/python bench/issue.py --seconds 4 --wrk --runs 3
	$(BIN)/python bench/audit.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .hypothesis
