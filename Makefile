# Two entry points, each installing what it needs first (Debian packages as root, Python deps in .venv):
#   make demo   the main job        make test   the test suite (what .ci/run calls)
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := redis-server graphite-carbon python3-whisper chromium fonts-dejavu-core

.PHONY: demo test deps system-deps lint bench

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

deps: system-deps $(VENV)/.installed

demo: deps
	$(VENV)/bin/skyline-analyzer demo

lint: deps
	$(PY) -m ruff check .

# Three test processes on two cores: most tests spend their time waiting on the servers and subprocesses
# they start (12.9 min in one process, 5.8 min in three, on the 2-core machine of 1 December 2026).
test: lint
	$(PY) -m pytest -q -n 3

bench: deps
	$(PY) benchmarks/check_corpus.py
