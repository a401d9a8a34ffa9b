"""The processes that host streams load no model code.

A stream session runs in a process of its own or beside others in a
:class:`~streamer.service.host.StreamHost`; either way that process imports the session
module and unpickles what crosses to it (the Replicas handles, Predictions, Detections).
torch, onnxruntime and the networks' code hold ~200 MB of resident memory: no import
path from there may reach them. Checked in a fresh interpreter, where nothing was
imported before.
"""
from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "torchvision", "onnxruntime", "safetensors", "retinaface",
         "workers.regressor", "workers.detector", "workers.checkpoint", "workers.networks",
         "workers.emotion", "workers.presence")


def _loaded_after(code: str) -> list[str]:
    probe = (f"import sys, json\n{code}\n"
             f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_session_module_imports_no_torch_and_no_model_code():
    assert _loaded_after("import streamer.pipeline.session") == []


def test_the_stream_host_imports_no_torch():
    assert _loaded_after("import streamer.service.host") == []


def test_what_reaches_a_session_unpickles_without_model_code():
    code = """
import pickle
import numpy as np
from workers.prediction import Detections, Prediction
n = 2
blobs = [pickle.dumps(Prediction(np.zeros((n, 29)), np.zeros((n, 3, 3)), np.zeros((n, 3)), np.zeros((n, 4)),
                                 np.zeros((n, 2)), np.zeros(n), np.zeros((n, 99)), np.zeros((n, 68, 2)))),
         pickle.dumps(Detections(np.zeros((1, 4)), np.zeros(1), np.zeros((1, 5, 2))))]
for m in [m for m in sys.modules if m.startswith(("workers", "streamer"))]:
    del sys.modules[m]
import streamer.pipeline.session
objs = [pickle.loads(b) for b in blobs]
assert type(objs[0]).__name__ == "Prediction" and len(objs[0]) == 2 and len(objs[1]) == 1
"""
    assert _loaded_after(code) == []


def test_the_old_import_paths_still_name_the_same_types():
    from workers import detector, emotion, emotion_labels, prediction, regressor

    assert regressor.Prediction is prediction.Prediction
    assert detector.Detections is prediction.Detections
    assert emotion.label is emotion_labels.label
