# Two commands on a fresh machine: `make app` runs the app, `make test` runs the tests.
# Both create .venv and install requirements on first use. torch is pinned through constraints-ci.txt
# (2.13.0; pip picks the CPU or CUDA build available to the machine).
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: app test install
install: $(STAMP)

$(STAMP): requirements.txt constraints-ci.txt
	@command -v espeak-ng >/dev/null || echo "warning: espeak-ng is missing (speech synthesis tests and the demo corpus need it): sudo apt-get install espeak-ng sox"
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -r requirements.txt -c constraints-ci.txt
	touch $(STAMP)

app: $(STAMP)
	$(VENV)/bin/python app.py

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q
