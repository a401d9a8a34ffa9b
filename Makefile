# Two commands do all the set-up (see README): `make demo` and `make test`.
# Both build .venv from pinned versions first and are safe to run again.
VENV  := .venv
PY    := $(VENV)/bin/python
PIP   := $(PY) -m pip install -q -c constraints.txt
STAMP := $(VENV)/.installed-runtime
DEV   := $(VENV)/.installed-dev
TRAIN := $(VENV)/.installed-train

.PHONY: demo test train-deps freeze

$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) -r requirements.txt
	$(PIP) --no-deps --no-build-isolation -e .
	touch $@

$(DEV): $(STAMP) requirements-dev.txt
	$(PIP) -r requirements-dev.txt
	touch $@

$(TRAIN): $(STAMP) requirements-train.txt
	$(PIP) -r requirements-train.txt
	touch $@

demo: $(STAMP)
	$(VENV)/bin/facestream analyze samples/obama.mp4 --out out/demo --annotate out/demo/annotated.mp4
	$(VENV)/bin/facestream report out/demo

test: $(DEV)
	$(PY) -m pytest

train-deps: $(TRAIN)

freeze:
	$(PY) -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt
