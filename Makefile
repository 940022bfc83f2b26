# Two commands on a fresh machine: `make demo` and `make test`. Each creates
# .venv when missing and installs the project into it first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck unit bench clean messages

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cleanroom demo --out demo-out

lint: $(STAMP)
	$(BIN)/ruff check cleanroom tests bench
	$(BIN)/ruff format --check cleanroom tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python bench/prepare.py

# The interface's message catalogs (web UI and reports): extract every marked string into
# the template, then merge it into each language's .po (translate the new entries there).
# The .po files are the source; they are compiled with Babel when the room starts.
I18N := cleanroom/room/i18n/locale
messages: $(STAMP)
	$(BIN)/pybabel -q extract -F babel.cfg -k N_ --no-location --sort-output \
		--project cleanroom --omit-header -o $(I18N)/messages.pot .
	$(BIN)/pybabel -q update -i $(I18N)/messages.pot -d $(I18N) -D messages \
		--ignore-obsolete --no-fuzzy-matching

clean:
	rm -rf $(VENV) demo-out bench/out .pytest_cache .hypothesis .ruff_cache .mypy_cache
