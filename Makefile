# Dozor: two commands on a fresh machine.
#   make demo   set everything up, run the pipeline on the bundled sample (embedded broker)
#   make test   set everything up, run every test (CI calls this through .ci/run)
#   make test-fast  the pure tier (tests/unit): no broker, database or browser, under a minute

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
# The CPU wheel of this torch version lies on the build machines' disk; any other version
# would download several GB of CUDA libraries.
TORCH  ?= torch==2.13.0
SYSTEM_PACKAGES := prometheus prometheus-alertmanager chromium chromium-driver
PYTEST_ARGS ?=

.PHONY: demo test test-fast venv system-deps bench clean help

help:
	@echo "make demo   - run Dozor on the bundled sample, live in the terminal (Ctrl-C stops)"
	@echo "make test   - install everything and run the whole test suite"
	@echo "make test-fast - the pure tests (tests/unit), under a minute"
	@echo "make bench  - classifier benchmark (figures in README and the model card)"

venv: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[test]" --config-settings editable_mode=compat
	touch $(STAMP)

# promtool, amtool, prometheus and alertmanager for the monitoring tests, chromium and its
# driver for the moderation UI's browser tests (Debian packages).
system-deps:
	@missing=""; \
	for bin in promtool prometheus amtool prometheus-alertmanager chromium chromedriver; do \
	  command -v $$bin >/dev/null || missing="$$missing $$bin"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing $(SYSTEM_PACKAGES) (missing:$$missing)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null; \
	fi

demo: venv
	$(VENV)/bin/dozor demo

test: venv system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

# The pure tier: no broker, no database, no browser, no system tools. tests/models loads the
# shipped model in CLI subprocesses (about a minute on its own): it runs with make test.
test-fast: venv
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

bench: venv
	$(PY) bench/bench_classifier.py

clean:
	rm -rf $(VENV) .cache .pytest_cache
