# Two commands for a fresh machine: `make run` (set up and start the bot) and `make test` (set up and test).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test check teams-app proof bench

$(PY):
	python3 -m venv $(VENV)

$(STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)
	$(PY) bot.py

check: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

test: check
	bash tests/pds/install.sh
	bash tests/msteams/install.sh
	bash tests/oracle/install.sh
	bash tests/postgres/install.sh
	bash tests/browser/install.sh
	$(PY) -m pytest -q -n 2

teams-app: $(STAMP)
	$(PY) teams/package.py

# The published reliability figures (docs/RELIABILITY.md): the whole suite with the large crash and fault rounds.
proof: check
	bash tests/pds/install.sh
	bash tests/msteams/install.sh
	bash tests/oracle/install.sh
	bash tests/postgres/install.sh
	bash tests/browser/install.sh
	$(PY) -m pytest -q --proof-scale=large

# The published performance figures (docs/PERFORMANCE.md): a benchmark that prints its tables, not a test.
bench: $(STAMP)
	bash tests/msteams/install.sh
	bash tests/postgres/install.sh
	$(PY) -m bench
