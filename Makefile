# Suite Subscriptions — the two commands a newcomer needs: `make run`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: help venv run test test-future lint types pytest bench bench-quick clean translations

help:
	@echo "make run    - set up .venv, install, start the API and the web console (/console/) on SQLite under ./var/ (PORT=8000)"
	@echo "make test   - set up .venv, install, then ruff, mypy --strict, pytest"
	@echo "make test-future - the fast tests under faketime at FUTURE_DATE (needs faketime)"
	@echo "make bench  - full benchmarks; make bench-quick - the same at small sizes"

# Re-install whenever the package metadata changes; a fresh clone gets everything.
$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy --strict domain application interface benchmarks

pytest: $(STAMP)
	$(BIN)/pytest -q

test: lint types pytest

# The fast tests on a faked system clock years ahead (Debian's faketime): no
# test may depend on the day it runs. CI runs it after `make test`. Only the
# calendar is faked: bounded waits count on the real monotonic clock (faked,
# a thread's timed wait would be computed years ahead of the kernel's and hang).
FUTURE_DATE ?= 2034-02-28 12:00:00
test-future: $(STAMP)
	FAKETIME_DONT_FAKE_MONOTONIC=1 faketime '$(FUTURE_DATE)' $(BIN)/pytest -q -m "not slow" -p no:cacheprovider

# `make run PORT=8100` when 8000 is taken (serve says so and exits 2).
PORT ?= 8000
run: $(STAMP)
	$(BIN)/suitesub serve --port $(PORT)

bench: $(STAMP)
	$(BIN)/python -m benchmarks

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks --quick

# The console's Japanese: extract the English messages, merge them into the .po
# (translate the new ones there), compile the .mo the app loads (both committed).
translations: $(STAMP)
	mkdir -p var
	$(BIN)/pybabel extract -F babel.cfg -k _l --add-location=file -w 100 -o var/messages.pot .
	$(BIN)/pybabel update -w 100 -i var/messages.pot -d interface/console/translations -D messages --no-fuzzy-matching
	$(BIN)/pybabel compile -d interface/console/translations -D messages

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
