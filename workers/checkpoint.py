"""Checkpoint format: ``NAME.safetensors`` (weights) + ``NAME.json`` (metadata).

The JSON says everything needed to use the weights correctly without reading code:
architecture, input size, crop rule and normalisation, the face model's version and
hash, the training command and data, and the evaluation numbers. Inference reads the
crop rule from here, so it is never hard-coded twice.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from safetensors.torch import load_file, save_file

from workers import face_model
from workers.networks import FaceRegressor, ShapeBranch, ShapeInput

FORMAT = "facestream-checkpoint/1"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_NAME = "facestream-mb05"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or does not match this code."""


def default_path() -> Path:
    return WEIGHTS_DIR / f"{DEFAULT_NAME}.safetensors"


def _pair(path: str | Path) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_suffix(".safetensors"), p.with_suffix(".json")


def sidecar_path(ckpt: str | Path, kind: str) -> Path:
    """Where a small model fitted on a network's outputs lives: ``NAME.KIND.json`` beside
    ``NAME.safetensors`` (the emotion classifier, the presence probe)."""
    return _pair(ckpt)[0].with_suffix(f".{kind}.json")


def weights_sha256(ckpt: str | Path) -> str:
    """Hash of a network's weights file: what ties a sidecar to the outputs it was fitted on."""
    h = hashlib.sha256()
    with open(_pair(ckpt)[0], "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save(model: FaceRegressor, meta: dict, path: str | Path) -> Path:
    """Write weights and metadata atomically (temp files + rename)."""
    st, js = _pair(path)
    st.parent.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "format": FORMAT, "architecture": model.arch, "shape_input": str(model.shape_input)}
    if model.branch_spec is not None:
        meta["shape_branch"] = model.branch_spec.to_meta()
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(st) + ".tmp", metadata={"format": FORMAT})
    os.replace(str(st) + ".tmp", st)
    write_meta(js, meta)
    return st


def write_meta(js: str | Path, meta: dict) -> Path:
    """Replace a checkpoint's JSON (or a sidecar's) atomically (temp file + rename)."""
    js = Path(js)
    js.parent.mkdir(parents=True, exist_ok=True)
    Path(str(js) + ".tmp").write_text(json.dumps(meta, indent=2, sort_keys=True))
    os.replace(str(js) + ".tmp", js)
    return js


def load_meta(path: str | Path) -> dict:
    st, js = _pair(path)
    if not st.exists() or not js.exists():
        raise CheckpointError(
            f"no trained checkpoint at {st} (+ .json). Train one with `facestream train` "
            "(see docs/training.md) or pass --checkpoint PATH."
        )
    meta = json.loads(js.read_text())
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{js}: unknown checkpoint format {meta.get('format')!r}")
    if not meta.get("trained", False):
        raise CheckpointError(f"{js}: this checkpoint is marked untrained; refusing to report its numbers")
    check_face_model(meta, st)
    return meta


def check_face_model(meta: dict, path: Path) -> None:
    """A checkpoint's expression and shape coefficients only mean something in the face
    model it was trained on: refuse to read them in another one."""
    try:
        face_model.check(meta.get("face_model") or {}, face_model.load())
    except face_model.FaceModelError as e:
        raise CheckpointError(f"{path} was {e}") from None


def migrate(path: str | Path) -> bool:
    """Rewrite an older checkpoint's face-model record (a byte hash, no fingerprint) as
    this installation's identity and fingerprint; True if it changed. Refuses a checkpoint
    of another face-model version, whose coefficients mean something else."""
    st, js = _pair(path)
    meta = json.loads(js.read_text())
    have = face_model.load()
    want = meta.get("face_model") or {}
    if "fingerprint" in want:
        check_face_model(meta, st)
        return False
    if want.get("version") != have.version:
        raise CheckpointError(f"{js}: trained for face model {want.get('version', '?')}, not {have.version}; "
                              "it cannot be migrated, only retrained")
    meta["face_model"] = {**have.meta(), "migrated_from_sha256": want.get("sha256", "")}
    write_meta(js, meta)
    return True


def load(path: str | Path, *, require_trained: bool = True) -> tuple[FaceRegressor, dict]:
    st, js = _pair(path)
    if require_trained:
        meta = load_meta(path)
    else:
        meta = json.loads(js.read_text())
    branch = ShapeBranch.from_meta(meta["shape_branch"]) if "shape_branch" in meta else None
    model = FaceRegressor(meta["architecture"], ShapeInput(meta.get("shape_input", ShapeInput.EMBEDDING)), branch)
    model.load_state_dict(load_file(str(st)))
    model.eval()
    return model, meta
