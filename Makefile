# vlexplore developer tasks.  `make help` lists them.
#
#   make run                    start the app on the demo folder (make run FOLDER=~/Pictures for your own)
#   make test                   unit + app + browser tests
#   make lint                   ruff check, ruff format --check, mypy
#   make bench                  benchmarks on Fashion-MNIST (Debian package dataset-fashion-mnist)

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
FOLDER ?= demo
MODEL ?= bundled
PYTEST_ARGS ?=

export PIP_DISABLE_PIP_VERSION_CHECK := 1

FASHION_MNIST := /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
BENCH_SCRIPTS ?= $(wildcard bench/quality.py bench/speed.py bench/language.py)

# $(call apt_install,<Debian packages>,<file that exists once they are installed>)
# Installs only when the file is missing AND we are root AND apt-get exists; silently does nothing otherwise.
# A failed install is reported but not fatal: whatever needs the package says so itself.
define apt_install
	@if [ ! -e $(2) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "apt-get install $(1)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q --no-install-recommends $(1) >/dev/null 2>&1 \
	    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $(1) >/dev/null; } \
	    || echo "warning: could not install $(1)" >&2; \
	fi
endef

.PHONY: help venv run demo test lint format bench bench-scale clean distclean

help:
	@echo "make venv       create $(VENV) and install requirements-dev.txt (instant when up to date)"
	@echo "make run        start the Streamlit app on FOLDER=$(FOLDER)"
	@echo "make test       run the test suite (installs Debian chromium for the browser test when root);"
	@echo "                PYTEST_ARGS='-m \"not browser\"' to pass options"
	@echo "make lint       ruff check, ruff format --check and mypy;  make format: ruff format"
	@echo "make bench      export Fashion-MNIST and run $(or $(BENCH_SCRIPTS),the bench scripts)"
	@echo "make bench-scale  70k images: export, embed once (~1 h on 2 cores), scale table, app on 70k"
	@echo "make demo       rebuild demo/ from Debian's tuxpaint-stamps-default (installed when root with apt)"
	@echo "make clean      remove caches and generated bench data;  make distclean: also $(VENV) and .cache"

# The stamp is newer than both requirements files once they are installed, so a re-run does nothing.
venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@if [ ! -x $(PY) ]; then \
	  echo "$(PYTHON) -m venv $(VENV)"; \
	  $(PYTHON) -m venv $(VENV) || { \
	    rm -rf $(VENV); \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	      echo "apt-get install python3-venv"; \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null 2>&1 \
	        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null; }; \
	      $(PYTHON) -m venv $(VENV); \
	    else \
	      echo "error: '$(PYTHON) -m venv' failed; install python3-venv (Debian/Ubuntu) and retry" >&2; exit 1; \
	    fi; \
	  }; \
	fi
	$(PY) -m pip install -r requirements-dev.txt
	@touch $@

run: venv
	@test -d demo/bird || $(MAKE) demo
	VLEXPLORE_FOLDER=$(FOLDER) VLEXPLORE_MODEL=$(MODEL) $(VENV)/bin/streamlit run app.py \
	  --server.headless true --browser.gatherUsageStats false

demo: venv
	$(call apt_install,tuxpaint-stamps-default,/usr/share/tuxpaint/stamps/animals/birds/owl.png)
	$(PY) bench/make_demo.py

test: venv
	$(call apt_install,chromium chromium-driver,/usr/bin/chromium)
	@echo "$(PY) -m pytest -q $(PYTEST_ARGS)"; status=0; $(PY) -m pytest -q $(PYTEST_ARGS) || status=$$?; \
	  if [ $$status -eq 5 ]; then echo "error: pytest collected no tests (see testpaths in pyproject.toml)" >&2; fi; \
	  exit $$status

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: venv
	$(VENV)/bin/ruff format .

bench: venv
	$(call apt_install,dataset-fashion-mnist,$(FASHION_MNIST))
	$(PY) bench/fashion_mnist.py --split test
	@set -e; for script in $(BENCH_SCRIPTS); do echo "== $$script"; $(PY) $$script; done

# 70k images (Fashion-MNIST train + test): export, embed once (about 1 h on 2 cores; resumable), then the
# per-stage scale table and the app on the whole collection.
SCALE_DIR := bench/data/fashion-mnist-70k
bench-scale: venv
	$(call apt_install,dataset-fashion-mnist,$(FASHION_MNIST))
	$(PY) bench/fashion_mnist.py --split test --out $(SCALE_DIR)
	$(PY) bench/fashion_mnist.py --split train --out $(SCALE_DIR)
	$(PY) -m vlexplore embed $(SCALE_DIR) --cache-dir bench/data/cache
	$(PY) bench/scale.py
	$(PY) bench/app_70k.py
	$(PY) bench/summarize.py

clean:
	rm -rf .pytest_cache .ruff_cache .hypothesis bench/data build *.egg-info
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .cache
