"""``facestream predict`` runs the models in-process and promises no Ray: starting Ray (or
only importing it) would cost a still image seconds and hundreds of MB. Checked by running
the command in a fresh interpreter, where nothing was imported before, and reading what
it left in ``sys.modules``: a list of modules kept by hand would drift from what predict
really imports."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REAL = REPO.parent / "shared" / "data" / "real"


def test_predict_imports_no_ray():
    probe = f"""
import json, sys
from streamer.cli import main
code = main(["predict", {str(REAL / "prnet_1.jpg")!r}, "--json"])
ray = sorted(m for m in sys.modules if m == "ray" or m.startswith("ray."))
print(json.dumps({{"code": code, "ray": ray}}))
"""
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True,
                         timeout=240, check=True)
    lines = out.stdout.strip().splitlines()
    assert json.loads(lines[0])["image"].endswith("prnet_1.jpg")   # it did predict a face
    assert json.loads(lines[-1]) == {"code": 0, "ray": []}
