# Conv2d from the ground up. Learners: `make lab`. Everyone: `make test`.
# Instructors: see README.md, "Instructor guide" (make targets below wrap the convcourse CLI).

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
PORT ?= 8888
PYTEST_ARGS ?=
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: env lab test build check-build html lock clean help

help:
	@echo "make lab     create the environment (first time) and open JupyterLab on notebooks/"
	@echo "make test    create the environment if needed and run every test"
	@echo "make build   regenerate notebooks/ and solutions/ from autograder/source"
	@echo "make html    render the answer key to HTML (build/html)"

$(STAMP):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (found " + sys.version.split()[0] + "). Install it, or run: make PYTHON=/path/to/python3.11 ...")'
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (conv course)" >/dev/null
	touch $@

env: $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir=notebooks --ServerApp.ip=127.0.0.1 --ServerApp.port=$(PORT) $(LAB_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

build: $(STAMP)
	$(BIN)/python -m convcourse.build $(LESSONS)

check-build: $(STAMP)
	$(BIN)/python -m convcourse.build --check

lock: $(STAMP)
	{ echo "# Exact versions of every package the environment installs (pip freeze of a fresh 'make env')."; \
	  echo "# The Makefile installs with '-c constraints.txt'; regenerate with 'make lock'."; \
	  $(BIN)/python -m pip freeze --exclude-editable | sed 's/+cpu$$//'; } > constraints.txt.new && mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) build artifacts .pytest_cache
