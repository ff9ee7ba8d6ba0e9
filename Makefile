# alert-history: `make run` serves on :8080 with SQLite under ./data; `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements/lock.txt pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: venv run test lint bench lock system-deps clean

$(STAMP): requirements/lock.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements/lock.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

run: venv
	mkdir -p data
	DATABASE_URL=$${DATABASE_URL:-sqlite:///data/alert_history.db} $(BIN)/alert-history serve

system-deps:
	@scripts/system-deps.sh

test: venv system-deps
	$(BIN)/pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy --strict src/alert_history
	$(BIN)/lint-imports

bench: venv
	$(BIN)/python -m bench $(BENCH_ARGS)

# Re-resolve the lock file from pyproject.toml (needs the network to PyPI).
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install -q -e '.[dev]'
	.venv-lock/bin/pip freeze --exclude-editable | grep -v '^alert-history' > requirements/lock.txt
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
