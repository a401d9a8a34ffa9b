# Two commands do all the set-up (see README): `make demo` and `make test`.
# Both build .venv from pinned versions first and are safe to run again.
VENV  := .venv
PY    := $(VENV)/bin/python
PIP   := $(PY) -m pip install -q -c constraints.txt
STAMP := $(VENV)/.installed-runtime
DEV   := $(VENV)/.installed-dev
TRAIN := $(VENV)/.installed-train

.PHONY: demo test train-deps weights freeze browser promtool

$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) -r requirements.txt
	$(PIP) --no-deps --no-build-isolation -e .
	touch $@

$(DEV): $(STAMP) requirements-dev.txt requirements-train.txt
	$(PIP) -r requirements-dev.txt
	touch $@

$(TRAIN): $(STAMP) requirements-train.txt
	$(PIP) -r requirements-train.txt
	touch $@

demo: $(STAMP)
	$(VENV)/bin/facestream analyze samples/obama.mp4 --out out/demo --annotate out/demo/annotated.mp4
	$(VENV)/bin/facestream report out/demo

# Headless Chromium and its driver from the OS packages, for the live view's browser test
# (tests/streamer/service/test_live_view.py and test_docs.py, which skip saying why when there is none): installed
# when missing and we may (root, apt-get); a no-op when they are there.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null || \
	      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null; }; } || \
	  echo "make browser: no chromium and cannot install it (not root or no apt-get): the browser test will skip"; }

# promtool, to check and unit-test deploy/prometheus-alerts.yaml (tests/streamer/service/
# test_metrics.py skips without it): taken out of Debian's prometheus package into .venv/bin,
# without installing the package (that would start a Prometheus server).
promtool: $(STAMP)
	@test -x $(VENV)/bin/promtool || { d=$$(mktemp -d); \
	  { (cd $$d && apt-get download -q prometheus && dpkg -x prometheus_*.deb x) >/dev/null 2>&1 && \
	    cp $$d/x/usr/bin/promtool $(VENV)/bin/promtool; } || \
	  echo "make promtool: cannot fetch Debian's prometheus package: the alert-rule test will skip"; rm -rf $$d; }

# Lint (ruff), type check (mypy) and the tests; settings in pyproject.toml.
test: $(DEV) browser promtool
	$(PY) -m ruff check streamer workers training bench tests
	$(PY) -m mypy
	$(PY) -m pytest -q

train-deps: $(TRAIN)

freeze:
	{ echo "# Exact versions of everything facestream installs (pip -c constraints.txt); regenerate with"; \
	  echo "# \`make freeze\` after changing requirements*.txt."; \
	  $(PY) -m pip freeze --exclude-editable | grep -v '^-e'; } > constraints.txt

# The whole recipe behind workers/weights (docs/training.md): teacher labels for video
# frames and in-the-wild faces, renders, training, evaluation, then the emotion classifier
# fitted on the new network's eta and the emotion branch beside it (docs/accuracy.md). About 4 hours on a 2-core
# CPU (the training step uses a GPU when there is one); each step skips work already done.
# A reproduction beside the shipped weights:
#   make weights RUNS=runs/repro WEIGHTS=runs/repro/facestream-mb05 REPORT=runs/repro
REAL    := ../shared/data/real
RUNS    ?= runs
WEIGHTS ?= workers/weights/facestream-mb05
REPORT  ?= docs
weights: $(TRAIN)
	$(VENV)/bin/facestream face-model
	test -f data/labels/real_train.npz || $(PY) -m training.real_labels --out data/labels/real_train.npz \
	    $(REAL)/video/lp_d0.mp4 $(REAL)/video/lp_d3.mp4 $(REAL)/video/lp_d6.mp4 $(REAL)/video/lp_d9.mp4 \
	    $(REAL)/video/lp_d10.mp4 $(REAL)/video/lp_s18.mp4
	test -f data/labels/real_test.npz || $(PY) -m training.real_labels --out data/labels/real_test.npz \
	    $(REAL)/video/lp_d11.mp4 $(REAL)/video/lp_s32.mp4 $(REAL)/obama.mp4
	test -f data/labels/real_test_photos.npz || $(PY) -m training.real_labels \
	    --out data/labels/real_test_photos.npz $(REAL)/*.jpg
	test -f data/labels/clips2_test.npz || $(PY) -m training.real_labels --out data/labels/clips2_test.npz \
	    $(REAL)/video/vr_4.mp4 $(REAL)/video/st_wda_kh.mp4
	test -f data/labels/fer_heldout.npz || $(PY) -m training.wild_labels
	$(PY) -m training.synth --prefix val --shards 1 --per-shard 600 --seed 999
	$(PY) -m training.synth --prefix val-actions --shards 1 --per-shard 600 --seed 998 --expressions actions
	$(PY) -m training.synth --prefix train --shards 8 --seed 1
	$(PY) -m training.synth --prefix actions --shards 8 --seed 2 --expressions actions
	$(VENV)/bin/facestream train --run $(RUNS)/mb05 --arch mb05 --pretrained 3ddfa_v2 \
	    --real data/labels/real_train.npz data/labels/aflw_train.npz data/labels/fer_train.npz \
	    --real-weights 0.2 0.55 0.25 --real-val data/labels/aflw_heldout.npz \
	    --synth 'data/synth/train-*.npz' 'data/synth/actions-*.npz' --synth-frac 0.3 \
	    --steps 3500 --lr 1e-3 --save-every 250 --export $(RUNS)/mb05-stage1/facestream-mb05
	$(VENV)/bin/facestream train --run $(RUNS)/mb05ft --arch mb05 --init $(RUNS)/mb05-stage1/facestream-mb05 \
	    --real data/labels/real_train.npz data/labels/aflw_train.npz data/labels/fer_train.npz \
	    --real-weights 0.2 0.55 0.25 --real-val data/labels/aflw_heldout.npz \
	    --synth 'data/synth/train-*.npz' 'data/synth/actions-*.npz' --synth-frac 0.3 \
	    --steps 6000 --lr 5e-4 --seed 1 --emotion-weight 0.25 --save-every 250 \
	    --export $(RUNS)/mb05-stage2/facestream-mb05
	$(VENV)/bin/facestream train --run $(RUNS)/mb05s3 --arch mb05 --init $(RUNS)/mb05-stage2/facestream-mb05 \
	    --real data/labels/real_train.npz data/labels/aflw_train.npz data/labels/fer_train.npz \
	    --real-weights 0.2 0.55 0.25 --real-val data/labels/aflw_heldout.npz \
	    --synth 'data/synth/train-*.npz' 'data/synth/actions-*.npz' --synth-frac 0.3 \
	    --steps 4000 --lr 3e-4 --seed 2 --emotion-weight 0.5 --save-every 250 --export $(WEIGHTS)
	$(PY) -m training.identity_branch --checkpoint $(WEIGHTS) \
	    --synth 'data/synth/train-000[0-3].npz' --val 'data/synth/val-0000.npz'
	$(PY) -m training.emotion --checkpoint $(WEIGHTS) --out $(REPORT)/emotion.json \
	    --confusion $(REPORT)/img/emotion_confusion.png
	$(PY) -m training.emotion_branch --run $(RUNS)/emotion-branch --checkpoint $(WEIGHTS) \
	    --split 6 --epochs 12 --lr 1e-3 --export
	$(PY) -m training.presence --checkpoint $(WEIGHTS) --out $(REPORT)/presence.json
	$(VENV)/bin/facestream evaluate --checkpoint $(WEIGHTS) --teacher-on-renders --into-checkpoint \
	    --out $(REPORT)/accuracy.json --plot lp_d11.mp4 $(REPORT)/img/heldout_lp_d11.png
