"""What the emotion classifier learns from: the network's eta for every labelled FER face.

The classifier reads only the 29 expression coefficients the shipped network predicts, so
its training data are the network's own outputs on the FER2013 label files
(``data/labels/fer_{train,heldout}.npz``, wild_labels.py), run un-augmented through
metrics.predict_samples exactly as evaluation runs them. Beside eta this keeps, per face,
what the evaluation compares with or bins by: MediaPipe's blendshapes (where it found the
face), the network's yaw, and the trunk's pooled features (the deep-feature reference the
issue asks about: what a classifier could reach if it read more than eta).

Running the network over 28k faces takes minutes on a CPU, so the result is cached per
checkpoint (keyed by the hash of its weights, names are reused across runs) and label file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from training.evaluate_wild import load as load_wild
from workers import checkpoint
from workers.checkpoint import weights_sha256
from workers.mirror import MirrorAveraged, asks_for_it, for_inference
from workers.networks import FaceRegressor

CACHE = Path(__file__).resolve().parents[1] / "runs" / "emotion" / "features"


def extract(model: torch.nn.Module, size: int, labels: Path) -> dict:
    """Run ``model`` over the kept faces of one FER label file; numpy arrays per face.

    ``model`` is the network as inference runs it (workers.mirror.for_inference); when it
    is mirror-averaged, the pooled features are averaged over the two views as well."""
    from training.metrics import predict_samples

    data, ex = load_wild(labels)
    mirrored = isinstance(model, MirrorAveraged)
    network = model.network if mirrored else model
    assert isinstance(network, FaceRegressor)   # what checkpoint.load gives
    pooled: list[torch.Tensor] = []

    def keep_pooled(_module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        f = args[0].detach().float().cpu()
        pooled.append((f[: len(f) // 2] + f[len(f) // 2:]) / 2 if mirrored else f)

    # the heads read network.embed(pooled): catching embed's input reuses predict_samples as is
    hook = network.embed.register_forward_pre_hook(keep_pooled)
    try:
        P, _ = predict_samples(model, data, size)
    finally:
        hook.remove()
    d = np.load(labels)
    keep = d["keep"]
    return {
        "eta": P["expression"].astype(np.float32),
        "yaw": P["euler"][:, 0].astype(np.float32),
        "pooled": torch.cat(pooled).numpy().astype(np.float32),
        "emotion": np.asarray(ex["emotion"]).astype(str),
        "blend": np.asarray(ex["blend"], np.float32),
        "blend_mask": np.asarray(ex["blend_mask"], bool),
        "name": d["name"][keep].astype(str),
    }


def features(ckpt: str | Path, labels: str | Path, cache: Path = CACHE, one_view: bool = False) -> dict:
    """Cached :func:`extract` for checkpoint ``ckpt`` (loaded and face-model checked), run
    as inference runs it; ``one_view``: without mirror averaging, as a live camera's crops
    are read (``model.mirror_average: files``)."""
    labels = Path(labels)
    meta = checkpoint.load_meta(ckpt)
    views = "" if one_view or not asks_for_it(meta) else "-mirror"
    path = cache / f"{weights_sha256(ckpt)[:16]}{views}-{labels.stem}.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    network, meta = checkpoint.load(ckpt)   # the weights only when the features must be made
    out = extract(network if one_view else for_inference(network, meta), int(meta["crop"]["size"]), labels)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(path)
    return out


if __name__ == "__main__":
    import sys

    torch.set_num_threads(1)
    for lab in sys.argv[2:]:
        f = features(sys.argv[1], lab)
        print(lab, {k: v.shape for k, v in f.items()})
