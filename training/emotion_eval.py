"""How good the emotion classifier is on held-out faces: the numbers docs/accuracy.md quotes.

Accuracy and macro-F1 (the mean of per-class F1, so disgust counts as much as happy), the
confusion matrix (rows: true class, normalised per row) as numbers and as a picture,
accuracy by |yaw| bin (the point of reading eta: the label should not fall off as the head
turns) and the expected calibration error (ECE: the gap between confidence and accuracy,
averaged over 15 equal-width confidence bins weighted by their faces), which is what the
abstention threshold relies on.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from training.evaluate_wild import macro_f1
from workers.emotion import CLASSES

YAW_BINS = (("0-15", 0.0, 15.0), ("15-30", 15.0, 30.0), ("30-45", 30.0, 45.0), ("45+", 45.0, np.inf))
ECE_BINS = 15


def ece(probs: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error of the top class, equal-width confidence bins."""
    conf = probs.max(1)
    right = probs.argmax(1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.mean() * abs(conf[m].mean() - right[m].mean())
    return float(total)


def confusion(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """(7, 7) counts, rows true class, columns predicted."""
    c = np.zeros((len(CLASSES), len(CLASSES)), np.int64)
    np.add.at(c, (y, p), 1)
    return c


def metrics(probs: np.ndarray, y: np.ndarray, yaw: np.ndarray | None = None) -> dict:
    """All held-out numbers for class probabilities ``probs`` (N, 7) and true indices ``y``."""
    p = probs.argmax(1)
    f1, per = macro_f1(np.asarray(CLASSES)[y], np.asarray(CLASSES)[p])
    out = {"faces": int(len(y)), "accuracy": float(np.mean(p == y)), "macro_f1": f1,
           "f1_per_class": {c: per.get(c, 0.0) for c in CLASSES}, "ece": ece(probs, y),
           "mean_confidence": float(probs.max(1).mean()),
           "confusion": confusion(y, p).tolist()}
    if yaw is not None:
        a = np.abs(np.asarray(yaw))
        out["accuracy_by_yaw"] = {
            name: {"faces": int(m.sum()), "accuracy": float(np.mean(p[m] == y[m])) if m.any() else None}
            for name, lo, hi in YAW_BINS for m in [(a >= lo) & (a < hi)]}
    return out


def abstention_curve(probs: np.ndarray, y: np.ndarray,
                     thresholds: tuple[float, ...] = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7)) -> list[dict]:
    """Share of faces labelled and their accuracy when faces below each minimum
    probability say ``uncertain``: what the configurable threshold trades."""
    conf, right = probs.max(1), probs.argmax(1) == y
    return [{"min_prob": t, "labelled": float(np.mean(conf >= t)),
             "accuracy": float(right[conf >= t].mean()) if (conf >= t).any() else None} for t in thresholds]


def plot_confusion(results: dict[str, dict], out: Path) -> Path:
    """Row-normalised confusion matrices side by side, one per feature set."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2 * len(results), 4.8), dpi=90)
    axes = np.atleast_1d(fig.subplots(1, len(results)))
    for ax, (title, r) in zip(axes, results.items()):
        c = np.asarray(r["confusion"], np.float64)
        norm = c / np.maximum(c.sum(1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(CLASSES)):
            for j in range(len(CLASSES)):
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(CLASSES)), CLASSES, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{title}\nacc {r['accuracy']:.3f}, macro-F1 {r['macro_f1']:.3f} ({r['faces']} faces)", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig).print_png(str(out))
    return out


def markdown(res: dict) -> str:
    """The comparison table (rows: feature sets) for the terminal and docs/accuracy.md."""
    bins = [b[0] for b in YAW_BINS]
    rows = ["| features (FER2013 held out) | faces | accuracy | macro-F1 | ECE | accuracy by \\|yaw\\| "
            + " / ".join(bins) + " |", "|---|---|---|---|---|---|"]
    for name, r in res.items():
        by = r.get("accuracy_by_yaw")
        yaw = " / ".join("-" if by[b]["accuracy"] is None else f"{by[b]['accuracy']:.2f} ({by[b]['faces']})"
                         for b in bins) if by else "-"
        rows.append(f"| {name} | {r['faces']} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['ece']:.3f} | {yaw} |")
    return "\n".join(rows)
