# make book: install, execute every notebook on the `default` profile, build the HTML book.
# make test: install, then the unit, notebook (nbval) and browser tests.
PYTHON ?= python3
PROFILE ?= default
export PYTHON

.PHONY: setup book test
setup:
	bash scripts/setup.sh

book: setup
	$(PYTHON) -m ddlib book --profile $(PROFILE)

test: setup
	$(PYTHON) -m pytest tests -q
