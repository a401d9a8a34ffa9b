"""Which checkpoint a run uses, checked before anything is started for it.

A module of its own, apart from :mod:`streamer.pipeline.backend`, because ``facestream
predict`` runs the models in-process and promises no Ray: it needs this check and none of
what the backend starts (Ray actors, Redis, sinks), so it must be importable without them.
"""
from __future__ import annotations

from pathlib import Path

from streamer.config import Config


def check_checkpoint(cfg: Config) -> tuple[Path, dict]:
    """The configured (or shipped) checkpoint's path and metadata, once it is known to be
    trained, complete, loadable and made for this installation's face model, with the
    emotion classifier and presence probe beside it (if any) fitted on those weights."""
    from workers import checkpoint, emotion, presence
    from workers.checkpoint import CheckpointError
    from workers.crops import CropRule

    ckpt_path = Path(cfg.model.checkpoint) if cfg.model.checkpoint else checkpoint.default_path()
    meta = checkpoint.load_meta(ckpt_path)
    try:
        CropRule.from_meta(meta)
        checkpoint.load(ckpt_path)  # the weights too: a replica failing later says less
        emotion.load(ckpt_path, required=False)
        presence.load(ckpt_path)
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"{ckpt_path}: unusable checkpoint ({type(e).__name__}: {e})") from None
    return ckpt_path, meta
