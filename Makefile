# Two commands on a fresh machine: `make app` runs the app, `make test` runs the tests.
# Both create .venv and install requirements on first use. torch is pinned through constraints-ci.txt
# (2.13.0; pip picks the CPU or CUDA build available to the machine).
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: app test install lint system-deps
install: $(STAMP)

$(STAMP): requirements.txt constraints-ci.txt
	@command -v espeak-ng >/dev/null || echo "warning: espeak-ng is missing (speech synthesis tests and the demo corpus need it): sudo apt-get install espeak-ng sox"
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -r requirements.txt -c constraints-ci.txt
	touch $(STAMP)

app: $(STAMP)
	$(VENV)/bin/python app.py

# System tools the tests and the demo corpus need (speech engines, sox, and chromium for the browser test): installed with apt when we are root or have sudo; otherwise a
# clear message and a failure (never a silently skipped test suite).
system-deps:
	@missing=""; for t in espeak-ng flite sox chromium; do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=sudo; \
	  else echo "error: missing system tools:$$missing. Install them: sudo apt-get install espeak-ng flite sox chromium"; exit 1; fi; \
	  echo "installing:$$missing"; DEBIAN_FRONTEND=noninteractive $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q espeak-ng flite sox chromium; \
	fi

test: $(STAMP) system-deps
	LALM_SLU_REQUIRE_TOOLS=1 $(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
