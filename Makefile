# Conv2d from the ground up. Learners: `make lab`. Everyone: `make test`.
# Instructors: see README.md, "Instructor guide" (make targets below wrap the convcourse CLI).

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
PORT ?= 8888
PYTEST_ARGS ?=
# make test runs the tests in this many pytest-xdist processes (tests sharing a built result stay together):
# one more than CI's 2 cores: a 2-worker run used 30.5 CPU-minutes in 29 minutes, half the machine, the rest
# waiting (kernels and servers starting, cell time limits, a browser rendering); with 3 workers, and the tests
# ordered longest first (tests/conftest.py), vmstat shows both cores 96-100 % busy from the first test to the
# last minute (2026-12-01). The unit tests (make test-fast) only compute, so they use FAST_JOBS.
TEST_JOBS ?= 3
FAST_JOBS ?= 2
# When make started: make test prints its wall time, environment creation included.
START := $(shell date +%s)
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: env lab test test-fast bytecode lint format browser-deps sandbox-deps hub-deps build check-build html lock clean help

help:
	@echo "make lab     create the environment (first time) and open JupyterLab on notebooks/"
	@echo "             (instructors: make lab INSTRUCTOR=1 shows nbgrader's Formgrader and Create Assignment)"
	@echo "make test    create the environment if needed and run every test (what CI runs)"
	@echo "make test-fast  the unit tests only: no kernels, nbgrader or browser (for the edit loop)"
	@echo "make lint    ruff's lint and format checks (make test runs them); make format applies them"
	@echo "make build   regenerate notebooks/ and solutions/ from autograder/source"
	@echo "make html    render the answer key to HTML (build/html)"
	@echo "make formgrader  instructors: JupyterLab on autograder/ with nbgrader's formgrader"

$(STAMP):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (found " + sys.version.split()[0] + "). Install it, or run: make PYTHON=/path/to/python3.11 ...")'
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m convcourse.install $(BIN)/python --editable '.[dev,hub]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (conv course)" >/dev/null
	touch $@

env: $(STAMP)

# Learners get a lab without nbgrader's instructor UI (jupyter_config/learner disables its lab and server
# extensions); instructors run `make lab INSTRUCTOR=1` for Create Assignment and Formgrader.
LEARNER_CONFIG := $(CURDIR)/jupyter_config/learner
LAB_ENV = $(if $(filter-out 0,$(INSTRUCTOR)),,JUPYTER_CONFIG_PATH=$(LEARNER_CONFIG)$(if $(JUPYTER_CONFIG_PATH),:$(JUPYTER_CONFIG_PATH)))

lab: $(STAMP)
	$(LAB_ENV) $(BIN)/jupyter lab --ServerApp.root_dir=notebooks --ServerApp.ip=127.0.0.1 --ServerApp.port=$(PORT) \
		$(if $(filter 0,$(shell id -u)),--allow-root,) $(LAB_ARGS)

test: $(STAMP) browser-deps sandbox-deps hub-deps bytecode
	@status=0; $(MAKE) --no-print-directory lint || status=$$?; \
	  $(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadgroup $(PYTEST_ARGS) || status=$$?; \
	  echo "make test: $$(( $$(date +%s) - $(START) )) s wall in all (environment, browser deps and tests)"; \
	  exit $$status

# The course's own modules compiled once: every kernel, grading worker and nbgrader command of the suite
# imports them, and where PYTHONDONTWRITEBYTECODE is set (this workplace's machines set it) each process
# would compile them again, about 1 CPU-second each. compileall writes .pyc files whatever that variable says.
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q -j 0 convcourse tests benchmarks >/dev/null

# ruff's lint and format checks (config in pyproject.toml); `make format` applies both.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test-fast: $(STAMP) bytecode
	@status=0; $(BIN)/python -m pytest -n $(FAST_JOBS) --dist loadgroup -m "not slow and not browser" $(PYTEST_ARGS) \
	  || status=$$?; \
	  echo "make test-fast: $$(( $$(date +%s) - $(START) )) s wall"; exit $$status

# Debian's Chromium for tests/test_browser.py (Playwright drives it; no browser download). Where it cannot be
# installed, that test is skipped and says why.
browser-deps:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium for the browser test"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
	    || echo "browser-deps: could not install chromium; the browser test will be skipped"; \
	else echo "browser-deps: /usr/bin/chromium is missing (sudo apt-get install chromium chromium-driver);" \
	  "the browser test will be skipped"; fi

# Debian's bubblewrap sandboxes grading kernels (README, "How grading works"); tests/test_sandbox.py needs it.
# Where it cannot be installed, grading runs unsandboxed (and says so) and those tests are skipped with the reason.
sandbox-deps:
	@if command -v bwrap >/dev/null; then :; \
	elif [ "$$(uname -s)" != Linux ]; then echo "sandbox-deps: grading kernels are sandboxed on Linux only"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's bubblewrap for sandboxed grading kernels"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; } \
	    || echo "sandbox-deps: could not install bubblewrap; grading runs unsandboxed and its tests are skipped"; \
	else echo "sandbox-deps: bwrap is missing (sudo apt-get install bubblewrap); grading runs unsandboxed and" \
	  "the sandbox tests are skipped"; fi

# JupyterHub's proxy for tests/test_hub.py (and a trial hub): configurable-http-proxy from the npm registry,
# installed into the environment ($(BIN), on PATH here) unless it is on PATH already. Without npm or the registry
# the hub test is skipped with the reason.
CHP_VERSION := 5.2.0
hub-deps: $(STAMP)
	@if command -v configurable-http-proxy >/dev/null; then :; \
	elif ! command -v npm >/dev/null; then echo "hub-deps: npm is missing (sudo apt-get install npm);" \
	  "the JupyterHub test will be skipped"; \
	else echo "installing configurable-http-proxy@$(CHP_VERSION) into $(VENV) for the JupyterHub test"; \
	  npm install --global --prefix $(VENV) --no-audit --no-fund --loglevel=error \
	    configurable-http-proxy@$(CHP_VERSION) >/dev/null \
	    || echo "hub-deps: could not install configurable-http-proxy from npm; the JupyterHub test will be skipped"; \
	fi

html: $(STAMP)
	$(BIN)/python -m convcourse.html $(LESSONS)

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

# ---- Instructor workflow (wraps the convcourse CLI; see README.md, "Instructor guide") ----------------
# make roster CSV=students.csv | release LESSON=.. [EXCHANGE=1] | collect LESSON=.. ZIP=download.zip (or EXCHANGE=1)
# make grade LESSON=.. [STUDENT=id] [WORKERS=n | SCHEDULER=tcp://host:8786] [TIMEOUT=s] [FORCE=1]
# make feedback LESSON=.. [STUDENT=id] [EXCHANGE=1]
# make grades [OUT=file.csv] | summary LESSON=.. [OUT=plot.png] [BY_LEARNER=1]
# make integrity LESSON=.. [THRESHOLD=0.6] [CSV=file]
# (grades, summary and integrity write under <course>/reports/ unless OUT or CSV names another file)
# make formgrader [PORT=8888] [COURSE=dir]
CONVCOURSE = $(BIN)/python -m convcourse.cli $(if $(COURSE),--course $(COURSE))
.PHONY: roster release collect grade feedback grades summary integrity formgrader
need = $(if $($(1)),,$(error $(1)=... is required, e.g. make $@ $(1)=$(2)))

roster: $(STAMP)
	$(call need,CSV,students.csv)
	$(CONVCOURSE) roster $(CSV)

release: $(STAMP)
	$(call need,LESSON,01_sliding_window)
	$(CONVCOURSE) release $(LESSON) $(if $(EXCHANGE),--exchange)

collect: $(STAMP)
	$(call need,LESSON,01_sliding_window)
	$(CONVCOURSE) collect $(LESSON) $(if $(ZIP),--zip $(ZIP)) $(if $(EXCHANGE),--exchange) $(if $(PATTERN),--pattern '$(PATTERN)')

grade: $(STAMP)
	$(call need,LESSON,01_sliding_window)
	$(CONVCOURSE) grade $(LESSON) $(if $(STUDENT),--student $(STUDENT)) $(if $(WORKERS),--workers $(WORKERS)) \
	  $(if $(SCHEDULER),--scheduler $(SCHEDULER)) \
	  $(if $(TIMEOUT),--timeout $(TIMEOUT)) $(if $(FORCE),--force)

feedback: $(STAMP)
	$(call need,LESSON,01_sliding_window)
	$(CONVCOURSE) feedback $(LESSON) $(if $(STUDENT),--student $(STUDENT)) $(if $(EXCHANGE),--exchange)

grades: $(STAMP)
	$(CONVCOURSE) grades $(if $(OUT),--out $(OUT))

summary: $(STAMP)
	$(call need,LESSON,01_sliding_window)
	$(CONVCOURSE) summary $(LESSON) $(if $(OUT),--plot $(OUT)) $(if $(BY_LEARNER),--by-learner)

integrity: $(STAMP)
	$(call need,LESSON,01_sliding_window)
	$(CONVCOURSE) integrity $(LESSON) $(if $(THRESHOLD),--threshold $(THRESHOLD)) $(if $(CSV),--csv $(CSV))

# JupyterLab on the course root with nbgrader's formgrader and Create Assignment (shown even where `make lab` hides them)
formgrader: $(STAMP)
	$(CONVCOURSE) formgrader --port $(PORT) $(if $(LAB_ARGS),-- $(LAB_ARGS))
