"""The report's emotion ribbon: one track's emotion over time, as a picture.

Top: the smoothed class probabilities stacked to one at every record (each class a band
whose height is its probability), so a reader sees both the winning class and how close
the others run. Bottom: the label the track carried at each record, a coloured strip with
the abstentions (uncertain, too small, too turned) in greys, so time spent without a
trustworthy label is visible too. Class names and their order come from the dataset's
schema metadata (streamer.data.arrow.emotion_classes), never from this file.

One figure is built per report and refilled for every track, as the report's other plots.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from workers.emotion_labels import EMOTION_ABSTAIN

# colours by class name (any other name gets a colour from the tab10 cycle)
CLASS_COLORS = {"angry": "#d62728", "disgust": "#8c564b", "fear": "#9467bd", "happy": "#ffbf00",
                "neutral": "#7f9fbf", "sad": "#1f77b4", "surprise": "#2ca02c"}
# greys, light to dark, for the abstentions; too_dark and too_blurred (the pixels carry no
# expression) in two tinted greys so that they read apart from the size and pose ones
ABSTAIN_COLORS = {"uncertain": "#d9d9d9", "too_small": "#a6a6a6", "too_turned": "#737373",
                  "too_dark": "#404050", "too_blurred": "#b3a38c", "": "#ffffff"}


def _color(name: str, k: int) -> str:
    return CLASS_COLORS.get(name) or ABSTAIN_COLORS.get(name) or f"C{k % 10}"


class EmotionRibbon:
    """Stacked smoothed probabilities above a strip of the smoothed label, per track."""

    def __init__(self, classes: tuple[str, ...], dpi: int = 80) -> None:
        self.classes = tuple(classes)
        self.names = self.classes + EMOTION_ABSTAIN + ("",)
        self.fig = Figure(figsize=(10, 2.6), dpi=dpi)
        FigureCanvasAgg(self.fig)
        self.ax = self.fig.add_axes((0.07, 0.36, 0.72, 0.52))
        self.strip = self.fig.add_axes((0.07, 0.14, 0.72, 0.12), sharex=self.ax)
        colors = [_color(n, k) for k, n in enumerate(self.names)]
        self.cmap = ListedColormap(colors)
        handles = [Patch(color=c, label=n or "none") for n, c in zip(self.names[:-1], colors)]
        self.fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.80, 0.92), fontsize=7, frameon=False)

    def save(self, pts: np.ndarray, probs: np.ndarray, labels: np.ndarray, title: str, path: Path) -> None:
        """``pts`` (n,) seconds, ``probs`` (n, classes) smoothed, ``labels`` (n,) strings."""
        self.ax.cla()
        self.strip.cla()
        pts = np.asarray(pts, np.float64)
        t0, t1 = float(pts[0]), float(pts[-1])
        if t1 <= t0:
            t1 = t0 + 1.0 / 30
        p = np.nan_to_num(np.asarray(probs, np.float64), nan=0.0)
        self.ax.stackplot(pts, p.T, colors=[_color(n, k) for k, n in enumerate(self.classes)], lw=0)
        self.ax.set_ylim(0, 1)
        self.ax.set_xlim(t0, t1)
        self.ax.set_ylabel("probability", fontsize=8)
        self.ax.tick_params(labelbottom=False, labelsize=7)
        self.ax.set_title(title, fontsize=10, y=1.0)
        lookup = {n: i for i, n in enumerate(self.names)}
        codes = np.array([[lookup.get(str(label), len(self.names) - 1) for label in labels]], np.float64)
        edges = np.concatenate([pts, [pts[-1] + (pts[-1] - pts[-2] if len(pts) > 1 else 1.0 / 30)]])
        self.strip.pcolormesh(edges, [0, 1], codes, cmap=self.cmap, vmin=-0.5, vmax=len(self.names) - 0.5)
        self.strip.set_yticks([])
        self.strip.set_ylabel("label", fontsize=8, rotation=0, ha="right", va="center")
        self.strip.set_xlabel("time (s)", fontsize=8)
        self.strip.tick_params(labelsize=7)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fig.savefig(str(path), dpi=self.fig.dpi)

    def close(self) -> None:
        self.fig.clf()
