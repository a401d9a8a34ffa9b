"""A held-out clip, frame by frame: the network's raw output against the teacher's labels.

Correlations summarise agreement; this picture shows it — whether the jaw curve rises
when the mouth opens, whether blinks appear as dips at the right frames, how far the
pitch runs from the teacher's. Written by ``facestream evaluate --plot``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from training.data import real_to_samples
from training.metrics import READABLE, corr, predict_samples
from workers import face_model


def plot_clip(model: torch.nn.Module, size: int, labels: Path, source: str, out: Path) -> Path:
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
        r = float(corr(t, p))
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


def plot_wild_yaw(arrays: dict, res: dict, out: Path) -> Path:
    """Held-out AFLW faces: predicted yaw against AFLW's (model and both teachers, one panel
    each), and the yaw error by |yaw| bin. A mean hides where a model gives up; the scatter
    shows it (a cloud flattening towards 0 beyond 60 degrees is a model that cannot see
    profiles, a cloud thinning out is a teacher that misses them).

    ``arrays``, ``res``: what evaluate_wild.evaluate_aflw returns."""
    truth = arrays["aflw_yaw"]
    fig = Figure(figsize=(12, 9), dpi=90)
    grid = fig.add_gridspec(2, 3)
    lim = max(100.0, float(np.nanmax(np.abs(truth))) + 5)
    series = (("model_yaw", "facestream", "C0"), ("mediapipe_yaw", "MediaPipe (faces it finds)", "C1"),
              ("3ddfa_yaw", "3DDFA_V2", "C2"))
    for i, (key, name, colour) in enumerate(series):
        ax = fig.add_subplot(grid[0, i])
        y = arrays[key]
        ok = np.isfinite(y)
        ax.scatter(truth[ok], y[ok], s=4, alpha=0.4, color=colour, linewidths=0)
        ax.plot([-lim, lim], [-lim, lim], "k--", lw=1)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xlabel("AFLW yaw (°)")
        if i == 0:
            ax.set_ylabel("predicted yaw (°)")
        ax.set_title(f"{name}: {int(ok.sum())} of {len(truth)}", fontsize=10)

    bx = fig.add_subplot(grid[1, :])
    rows = res["yaw_bins"]
    labels = list(rows)
    bars = (("facestream, all faces", "C0", "", lambda r: r["model"]["yaw_mae_vs_aflw"]),
            ("facestream, the faces MediaPipe finds", "C0", "//",
             lambda r: r["model"]["yaw_mae_vs_aflw_on_mediapipe_faces"]),
            ("MediaPipe, the faces it finds", "C1", "", lambda r: r["mediapipe"]["yaw_mae_vs_aflw"]),
            ("3DDFA_V2, all faces", "C2", "", lambda r: r["3ddfa_v2"]["yaw_mae_vs_aflw"]))
    x = np.arange(len(labels))
    w = 0.8 / len(bars)
    for i, (name, colour, hatch, get) in enumerate(bars):
        v = [get(rows[b]) for b in labels]
        v = [np.nan if a is None else a for a in v]
        pos = x + (i - (len(bars) - 1) / 2) * w
        bx.bar(pos, v, w, color=colour, alpha=0.55 if hatch else 0.9, hatch=hatch, edgecolor="k", lw=0.4,
               label=name)
        for p, a in zip(pos, v):
            if np.isfinite(a):
                bx.text(p, a, f"{a:.1f}", ha="center", va="bottom", fontsize=7)
    bx.set_xticks(x, [f"{b}\n{rows[b]['faces']} faces\nMediaPipe finds {rows[b]['mediapipe']['found']:.0%}"
                      for b in labels], fontsize=8)
    bx.set_xlabel("|yaw| bin (AFLW), degrees")
    bx.set_ylabel("yaw MAE against AFLW (°)")
    bx.legend(fontsize=8)
    bx.set_title("yaw error by |yaw| (AFLW's own yaw is about 5° from a dense fit: the floor)", fontsize=10)
    fig.suptitle("held-out AFLW faces (never trained on)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig).print_png(str(out))
    return out
