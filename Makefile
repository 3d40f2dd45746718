# Two commands do everything on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= data
RUNS ?= runs

.PHONY: install demo lint test test-fast study bench gpu-wheel gpu-check clean

install: $(STAMP)

# Idempotent: system packages only when missing, venv only when absent, pip only when
# pyproject.toml changed since the last install.
$(STAMP): pyproject.toml setup.py
	@if ! pkg-config --exists opencv4 2>/dev/null || [ ! -e /usr/include/turbojpeg.h ]; then \
	  echo "== installing system packages FFCV compiles against"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq pkg-config libopencv-dev libturbojpeg0-dev >/dev/null; \
	fi
	@[ -x $(BIN)/python ] || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: install
	$(BIN)/mlpscale-convert digits --res 16 --root $(DATA)
	$(BIN)/mlpscale-train --config configs/demo_digits.yaml --set data.root=$(DATA) --set run.out_dir=$(RUNS) --overwrite
	@echo "== demo done: results in $(RUNS)/demo_digits/ (summary.json, metrics.jsonl, last.pt)"

lint: install
	$(BIN)/ruff check .

# tests/unit: in-process, seconds each (make test-fast); tests/integration: processes, faults, studies
test: install
	$(BIN)/python -m pytest -q tests/unit tests/integration

test-fast: install
	$(BIN)/python -m pytest -q tests/unit

# the whole mini scaling study (configs/sweeps/mini_cpu.yaml: 12 runs, 48 probes, ~3 min on 2 cores) and its fit
study: install
	$(BIN)/mlpscale-sweep configs/sweeps/mini_cpu.yaml --prepare --out $(RUNS)/sweeps/mini_cpu
	$(BIN)/mlpscale-scaling $(RUNS)/sweeps/mini_cpu --out $(RUNS)/sweeps/mini_cpu/scaling

bench: install
	$(BIN)/python -m benchmarks all --quick

# FFCV + lion-pytorch wheels for the offline Python 3.12 GPU machine, into the ignored wheels/ (~10 MB)
gpu-wheel:
	bash benchmarks/gpu_wheels.sh wheels

# On a single-GPU machine (no install, no network): one JSON, figure by figure, under 8 minutes
GPU_PY ?= python3
GPU_OUT ?= benchmarks/results
gpu-check:
	PYTHONPATH=. $(GPU_PY) benchmarks/gpu_check.py --wheels wheels --out-dir $(GPU_OUT)

clean:
	rm -rf $(RUNS) $(DATA) .pytest_cache build *.egg-info
