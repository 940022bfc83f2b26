# Two commands on a fresh machine: `make demo` and `make test`. Each creates
# .venv when missing and installs the project into it first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo demo-serve test test-clock lint typecheck unit suite bench clean messages

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cleanroom demo --out demo-out
	@echo "To keep the room serving and sign in to its web UI: $(BIN)/cleanroom demo --out demo-out --serve"
	@echo "(or: make demo-serve); tokens per role are then in demo-out/tokens.txt"

demo-serve: $(STAMP)
	$(BIN)/cleanroom demo --out demo-out --serve

lint: $(STAMP)
	$(BIN)/ruff check cleanroom tests bench
	$(BIN)/ruff format --check cleanroom tests bench
	$(BIN)/lint-imports  # the import contracts in pyproject.toml: the party/room boundary

typecheck: $(STAMP)
	$(BIN)/mypy

# The inner loop: the unit tests without the slow suites (Spark, browser, load, the
# end-to-end system and security modules); a few minutes instead of the whole suite's.
SLOW := spark or browser or load or system
unit: $(STAMP)
	$(BIN)/python -m pytest -q -m "not ($(SLOW))"

# Every test, marked slow or not: what CI runs.
suite: $(STAMP)
	$(BIN)/python -m pytest

test: lint typecheck suite

# The modules whose code reads the time (budget periods, report slots, sessions,
# template windows, recovery, served rooms, the CLI and the demo, which run as
# processes of their own), run again under Debian's faketime: a year ahead, and
# from one minute before this year ends (the clock runs on across New Year).
# In-process code reads the suite's set clock; whatever still read the
# machine's date would fail here.
TIME_TESTS := tests/unit/test_clock.py tests/unit/room/test_budget.py \
	tests/unit/room/test_reports_schedule.py tests/unit/room/test_reports_runs.py \
	tests/unit/room/test_recovery.py tests/unit/room/test_analyses_schema.py \
	tests/unit/room/test_web.py tests/unit/room/test_auth.py \
	tests/system/test_reports.py tests/system/test_web.py \
	tests/system/test_room_crash.py tests/system/test_cli_room.py tests/system/test_demo.py \
	tests/system/test_data_life.py
YEAR_END := $(shell date -u +%Y)-12-31 23:59:00

test-clock: $(STAMP)
	@command -v faketime >/dev/null || { echo "test-clock needs Debian's faketime (apt-get install faketime)"; exit 1; }
	faketime -f '+365d' $(BIN)/python -m pytest -q -p no:cacheprovider $(TIME_TESTS)
	faketime -f '@$(YEAR_END)' $(BIN)/python -m pytest -q -p no:cacheprovider $(TIME_TESTS)

bench: $(STAMP)
	$(BIN)/python bench/prepare.py

# The interface's message catalogs (web UI and reports): extract every marked string into
# the template, then merge it into each language's .po (translate the new entries there).
# The .po files are the source; they are compiled with Babel when the room starts.
I18N := cleanroom/i18n/locale
messages: $(STAMP)
	$(BIN)/pybabel -q extract -F babel.cfg -k N_ -k T_ --no-location --sort-output \
		--project cleanroom --omit-header -o $(I18N)/messages.pot .
	$(BIN)/pybabel -q update -i $(I18N)/messages.pot -d $(I18N) -D messages \
		--ignore-obsolete --no-fuzzy-matching

clean:
	rm -rf $(VENV) demo-out bench/out .pytest_cache .hypothesis .ruff_cache .mypy_cache .import_linter_cache
