"""A held-out clip, frame by frame: the network's raw output against the teacher's labels.

Correlations summarise agreement; this picture shows it — whether the jaw curve rises
when the mouth opens, whether blinks appear as dips at the right frames, how far the
pitch runs from the teacher's. Written by ``facestream evaluate --plot``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from workers import face_model
from workers.training.data import real_to_samples
from workers.training.evaluate import READABLE, _corr, predict_samples


def plot_clip(model, size: int, labels: Path, source: str, out: Path) -> Path:
    """Plot one clip of a teacher-label file (``source`` as stored, e.g. ``lp_d11.mp4``)."""
    fm = face_model.load()
    d = np.load(labels)
    keep = d["keep"]
    mine = d["source"][keep] == source
    if not mine.any():
        raise ValueError(f"{labels} holds no kept frames of {source}")
    data = {k: v[mine] for k, v in real_to_samples(labels).items()}
    frames = d["frame"][keep][mine]
    P, L = predict_samples(model, data, size)
    bp, bt = fm.blendshapes_from_eta(P["expression"]), fm.blendshapes_from_eta(L["eta"])
    idx = {n: i for i, n in enumerate(fm.blend_names)}

    fig = Figure(figsize=(9, 10), dpi=90)
    axes = fig.subplots(2 + len(READABLE), 1, sharex=True)
    for ax, (axis, name) in zip(axes[:2], ((0, "yaw"), (1, "pitch"))):
        ax.plot(frames, L["euler"][:, axis], "k--", lw=1.2, label="teacher")
        ax.plot(frames, P["euler"][:, axis], "C0", lw=1.2, label="facestream (raw)")
        ax.set_ylabel(f"{name} (°)")
    axes[0].legend(loc="upper right", fontsize=8)
    for ax, (title, names) in zip(axes[2:], READABLE.items()):
        j = [idx[n] for n in names]
        t, p = bt[:, j].mean(1), bp[:, j].mean(1)
        r = float(_corr(t, p))
        ax.plot(frames, t, "k--", lw=1.2)
        ax.plot(frames, p, "C1", lw=1.2)
        ax.set_ylim(-0.05, 1.05)
        ax.set_ylabel(title)
        ax.text(0.01, 0.85, f"r = {r:.2f}", transform=ax.transAxes, fontsize=9)
    axes[-1].set_xlabel("frame")
    fig.suptitle(f"held-out clip {source}: network (colour) vs teacher labels (dashed)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig).print_png(str(out))
    return out
