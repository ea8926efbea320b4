# Two entry points (see README): `make demo` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml .ci/system_deps.sh
	bash .ci/system_deps.sh
	$(PYTHON) -m venv $(VENV)
	# torch first and alone: the exact pin takes the local CPU build; anything else pulls CUDA.
	$(BIN)/pip install torch==2.13.0
	# then everything else in ONE resolver run (a second run may lift numpy past robosuite's pin).
	$(BIN)/pip install -e ".[train,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m sgqn_robot.demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python bench/env_throughput.py
	$(BIN)/python bench/update_throughput.py
	$(BIN)/python bench/runner_latency.py

clean:
	rm -rf $(VENV) build dist *.egg-info
