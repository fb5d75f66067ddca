# make book:  set up .venv, execute every notebook on the `default` profile, build the HTML book.
# make test:  set up .venv, then every test: unit, subprocess, notebook (nbval) and browser.
# make check: set up .venv, then the unit tests only (the quick development loop, < 2 min).
#
# Set-up (scripts/setup.sh) creates the virtual environment $(VENV) with $(PYTHON)
# and installs requirements.txt into it; pip runs again only when requirements.txt
# changes.  Everything after runs with $(VENV)/bin/python, never the system Python.
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= default
PY := $(VENV)/bin/python
export PYTHON VENV

.PHONY: setup book test check
setup:
	bash scripts/setup.sh

book: setup
	$(PY) -m ddlib book --profile $(PROFILE)

test: setup
	$(PY) -m pytest tests -q

check: setup
	$(PY) -m pytest tests -q -m "unit and not slow"
