# Two commands do all set-up on a fresh machine:
#   make demo   - builds .venv, then runs the demo end to end on the built-in demo corpus
#   make test   - builds .venv, then runs the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv demo demo-quick test clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# torch first and pinned: the CPU wheel; any other torch spec pulls CUDA.
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[test]'
	touch $(STAMP)

demo: venv
	$(BIN)/progrock demo --out demo

demo-quick: venv
	$(BIN)/progrock demo --out demo --quick

test: venv
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) demo .pytest_cache
