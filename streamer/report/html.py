"""Static HTML report of a facestream output directory: plots per stream and per track.

``write_report(out_dir)`` reads the Parquet dataset under ``out_dir/records`` (and
``out_dir/summary.json`` when present) and writes ``out_dir/report/``:

    index.html                              summary tables, persons, legend, every image below
    <stream>/overview.png                   faces per frame + lifetime of every track,
                                            grouped and coloured by person
    <stream>/track-<id>-pose.png            yaw / pitch / roll, raw (thin) vs smoothed
    <stream>/track-<id>-emotion.png         the emotion ribbon (streamer/report/emotion_ribbon.py)
    <stream>/track-<id>-expression.png      readable ARKit blendshape curves, plus the
                                            29 eta components as heatmaps, raw | smoothed

Only tracks with at least ``MIN_TRACK_RECORDS`` records get plots, at most the
``MAX_TRACKS_PER_STREAM`` longest per stream (the overview shows every track); the page
groups them by person (``person_id``: the tracks of one face), with a table of each
person's tracks. Data without persons (identity off, or written before schema version 4)
reads as one person per track. The report
is built in a hidden temp directory and swapped into place, so a crash never leaves a
half-written report, and a re-run leaves no stale images behind.

Users run it as ``facestream report OUT_DIR``.
"""
from __future__ import annotations

import html
import json
import math
import os
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from streamer.data.arrow import blendshape_names, emotion_classes, vector_matrix
from streamer.data.dataset import read_dataset
from streamer.data.record import N_EXP
from streamer.data.sinks.parquet_sink import partition_name
from streamer.report.emotion_ribbon import EmotionRibbon

MIN_TRACK_RECORDS = 5
MAX_TRACKS_PER_STREAM = 8
MAX_OVERVIEW_TRACKS = 60          # lifetime rows in the overview (the longest tracks)
DPI = 80

# Readable expression curves: label -> blendshape names averaged (as the face model names them).
BLEND_CURVES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("jawOpen", ("jawOpen",)),
    ("mouthSmile (L+R)/2", ("mouthSmile_L", "mouthSmile_R")),
    ("browInnerUp (L+R)/2", ("browInnerUp_L", "browInnerUp_R")),
    ("eyeBlink (L+R)/2", ("eyeBlink_L", "eyeBlink_R")),
    ("browDown (L+R)/2", ("browDown_L", "browDown_R", "browDown")),
)

_ANGLE_COLORS = {"yaw": "tab:blue", "pitch": "tab:orange", "roll": "tab:green"}
_ANGLE_LABELS = {"yaw": "yaw (+ toward image left)", "pitch": "pitch (+ looks up)",
                 "roll": "roll (+ clockwise)"}
_CURVE_COLORS = ("tab:red", "tab:purple", "tab:brown", "tab:cyan", "tab:olive")
_PERSON_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
                  "tab:olive", "tab:cyan", "0.4")


class ReportError(ValueError):
    """The directory holds no facestream dataset (or one without records)."""


# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------
@dataclass
class _Columns:
    """The dataset as numpy arrays (one row per record, sorted by stream, frame, track)."""

    stream_id: np.ndarray       # (n,) object
    frame_index: np.ndarray     # (n,) int64
    pts: np.ndarray             # (n,) float64
    track_id: np.ndarray        # (n,) int64
    person_id: np.ndarray       # (n,) int64: the track id where the data has no person
    pose: np.ndarray            # (n, 6)
    pose_raw: np.ndarray        # (n, 6)
    expression: np.ndarray      # (n, 29)
    expression_raw: np.ndarray  # (n, 29)
    blendshapes: np.ndarray     # (n, 53)
    model_version: np.ndarray   # (n,) object
    emotion: np.ndarray         # (n,) object: smoothed label ("" in version-1 data)
    emotion_probs: np.ndarray   # (n, 7) smoothed (NaN where not computed)

    def take(self, idx: np.ndarray) -> "_Columns":
        return _Columns(**{k: v[idx] for k, v in vars(self).items()})


def _scalar(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy()


def _columns(table: pa.Table) -> _Columns:
    """The columns of a table in ARROW_SCHEMA (read_dataset upgrades older data to it)."""
    return _Columns(
        stream_id=np.asarray(table.column("stream_id").to_pylist(), dtype=object),
        frame_index=_scalar(table, "frame_index").astype(np.int64),
        pts=_scalar(table, "pts").astype(np.float64),
        track_id=_scalar(table, "track_id").astype(np.int64),
        person_id=np.array([t if p is None else p for t, p in zip(table.column("track_id").to_pylist(),
                                                                  table.column("person_id").to_pylist())], np.int64),
        **{name: vector_matrix(table.column(name), name).astype(np.float64)
           for name in ("pose", "pose_raw", "expression", "expression_raw", "blendshapes", "emotion_probs")},
        model_version=np.asarray(table.column("model_version").to_pylist(), dtype=object),
        emotion=np.asarray(table.column("emotion").to_pylist(), dtype=object),
    )


def _curve_indices(names: tuple[str, ...]) -> list[tuple[str, list[int]]]:
    where = {n: i for i, n in enumerate(names)}
    curves = []
    for label, members in BLEND_CURVES:
        idx = [where[m] for m in members if m in where]
        if idx:
            curves.append((label, idx))
    return curves


def _read_summary(out_dir: Path) -> tuple[dict, str | None]:
    path = out_dir / "summary.json"
    if not path.is_file():
        return {}, None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return {}, f"summary.json could not be read: {e}"
    if not isinstance(data, dict):
        return {}, "summary.json is not a JSON object"
    return data, None


# --------------------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------------------
def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> None:
    # Figures are made without pyplot, so nothing global holds them; callers clf() them
    # when done. Fast zlib level: the plots are few colours, so the size barely changes.
    fig.savefig(path, dpi=DPI, pil_kwargs={"compress_level": 3})


def _frame_step(frame_index: np.ndarray) -> int:
    """Typical frame-index step between processed frames (1, or k with every=k)."""
    frames = np.unique(frame_index)
    if frames.size < 2:
        return 1
    return max(1, int(np.median(np.diff(frames))))


def _frame_dt(pts: np.ndarray) -> float:
    times = np.unique(pts)
    if times.size < 2:
        return 1.0 / 30.0
    d = np.diff(times)
    d = d[d > 0]
    return float(np.median(d)) if d.size else 1.0 / 30.0


def _plot_overview(cols: _Columns, stream_id: str, plotted: set[int], path: Path) -> None:
    tracks, counts = np.unique(cols.track_id, return_counts=True)
    shown = np.sort(tracks[np.lexsort((tracks, -counts))[:MAX_OVERVIEW_TRACKS]])
    person = {int(t): int(cols.person_id[np.argmax(cols.track_id == t)]) for t in shown}
    shown = np.array(sorted(shown, key=lambda t: (person[int(t)], int(t))), np.int64)   # a person's tracks together
    colours = {p: _PERSON_COLORS[k % len(_PERSON_COLORS)] for k, p in enumerate(sorted(set(person.values())))}
    step, dt = _frame_step(cols.frame_index), _frame_dt(cols.pts)

    # layout in inches: title 0.4, faces panel 1.1, gap 0.15, one 0.22 row per track, axis 0.55
    n = len(shown)
    rows_h = 0.22 * n + 0.3
    height = 0.4 + 1.1 + 0.15 + rows_h + 0.55
    fig = _figure(10, height)
    top = fig.add_axes((0.13, (0.55 + rows_h + 0.15) / height, 0.85, 1.1 / height))
    _, first, per_frame = np.unique(cols.frame_index, return_index=True, return_counts=True)
    top.step(cols.pts[first], per_frame, where="post", color="0.3", lw=1)
    top.set_ylabel("faces")
    top.set_ylim(0, int(per_frame.max()) + 0.5)
    top.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    more = f" (the {n} longest of {len(tracks)} tracks)" if n < len(tracks) else ""
    top.set_title(f"stream {stream_id}: faces per frame and track lifetimes by person{more}", fontsize=10, y=1.0)
    top.tick_params(labelbottom=False)
    top.grid(alpha=0.3)

    ax = fig.add_axes((0.13, 0.55 / height, 0.85, rows_h / height), sharex=top)
    for row, tid in enumerate(shown):
        sel = cols.track_id == tid
        runs = np.split(cols.pts[sel], np.flatnonzero(np.diff(cols.frame_index[sel]) > step) + 1)
        ax.broken_barh([(r[0], r[-1] - r[0] + dt) for r in runs], (row - 0.35, 0.7),
                       facecolors=colours[person[int(tid)]], alpha=1.0 if int(tid) in plotted else 0.35)
    ax.set_yticks(range(n))
    ax.set_yticklabels([f"person {person[int(t)]} · id {int(t)}" for t in shown], fontsize=8)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlabel("time (s)")
    ax.grid(axis="x", alpha=0.3)
    _save(fig, path)
    fig.clf()


class _PosePlot:
    """Yaw/pitch/roll over time, raw (thin, light) vs smoothed (solid).

    One figure is built per report and refilled for every track: creating axes and their
    ticks is most of matplotlib's cost, and a report draws many figures of one layout.
    """

    def __init__(self) -> None:
        self.fig = _figure(10, 3.2)
        ax = self.ax = self.fig.add_axes((0.07, 0.15, 0.72, 0.74))
        self.raw, self.smooth = [], []
        for name in ("yaw", "pitch", "roll"):
            c = _ANGLE_COLORS[name]
            self.raw.append(ax.plot([], [], color=c, lw=0.6, alpha=0.35)[0])
            self.smooth.append(ax.plot([], [], color=c, lw=1.6, label=_ANGLE_LABELS[name])[0])
        ax.axhline(0, color="0.5", lw=0.5)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("degrees")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)

    def save(self, cols: _Columns, stream_id: str, tid: int, path: Path) -> None:
        for k in range(3):
            self.raw[k].set_data(cols.pts, cols.pose_raw[:, k])
            self.smooth[k].set_data(cols.pts, cols.pose[:, k])
        self.ax.relim()
        self.ax.autoscale_view()
        self.ax.set_title(f"stream {stream_id} · track {tid}: head pose "
                          "(thin = raw, solid = smoothed)", fontsize=10, y=1.0)
        _save(self.fig, path)

    def close(self) -> None:
        self.fig.clf()


class _ExpressionPlot:
    """Readable ARKit blendshape curves above heatmaps of the 29 eta components
    (raw | smoothed, one symmetric colour scale). Reused across tracks like _PosePlot."""

    def __init__(self, curves: list[tuple[str, list[int]]]) -> None:
        self.curves = curves
        self.fig = fig = _figure(10, 6.0)
        ax = self.ax = fig.add_axes((0.07, 0.60, 0.72, 0.34))
        self.lines = [ax.plot([], [], color=color, lw=1.4, label=label)[0]
                      for (label, _), color in zip(curves, _CURVE_COLORS)]
        ax.set_ylabel("weight (0..1)")
        ax.grid(alpha=0.3)
        if self.lines:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        self.norm = Normalize(-1.0, 1.0)
        self.heat_axes, self.images = [], []
        for i, title in enumerate(("eta raw", "eta smoothed")):
            hax = fig.add_axes((0.07 + i * 0.43, 0.09, 0.38, 0.38))
            image = hax.imshow(np.zeros((N_EXP, 2)), aspect="auto", cmap="RdBu_r",
                               norm=self.norm, interpolation="nearest",
                               extent=(0, 1, N_EXP - 0.5, -0.5))
            hax.set_title(title, fontsize=9, y=1.0)
            hax.set_xlabel("time (s)")
            hax.set_yticks(range(0, N_EXP, 4))
            if i == 0:
                hax.set_ylabel("eta component")
            else:
                hax.tick_params(labelleft=False)
            self.heat_axes.append(hax)
            self.images.append(image)
        fig.colorbar(self.images[0], cax=fig.add_axes((0.90, 0.09, 0.015, 0.38)))

    def save(self, cols: _Columns, stream_id: str, tid: int, path: Path) -> None:
        t0, t1 = float(cols.pts[0]), float(cols.pts[-1])
        if t1 <= t0:
            t1 = t0 + _frame_dt(cols.pts)
        for line, (_, idx) in zip(self.lines, self.curves):
            line.set_data(cols.pts, cols.blendshapes[:, idx].mean(axis=1))
        top = float(np.nanmax(cols.blendshapes)) if cols.blendshapes.size else 1.0
        self.ax.set_ylim(-0.03, max(1.0, top if np.isfinite(top) else 1.0) * 1.03)
        self.ax.set_xlim(t0, t1)
        self.ax.set_title(f"stream {stream_id} · track {tid}: ARKit blendshapes (smoothed)",
                          fontsize=10, y=1.0)

        both = np.concatenate([cols.expression_raw.ravel(), cols.expression.ravel()])
        finite = np.abs(both[np.isfinite(both)])
        vmax = max(float(np.percentile(finite, 99)) if finite.size else 1.0, 1e-6)
        self.norm.vmin, self.norm.vmax = -vmax, vmax
        for image, _hax, data in zip(self.images, self.heat_axes,
                                    (cols.expression_raw, cols.expression)):
            image.set_data(np.ascontiguousarray(data.T))
            image.set_extent((t0, t1, N_EXP - 0.5, -0.5))
        _save(self.fig, path)

    def close(self) -> None:
        self.fig.clf()


# --------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------
_SUMMARY_ROWS = (
    ("Status", ("status",)),
    ("Frames", ("frames", "frames_processed", "frames_decoded", "n_frames")),
    ("Faces (records)", ("faces", "records", "n_faces", "n_records")),
    ("Tracks", ("tracks", "n_tracks")),
    ("Persons", ("persons",)),
    ("Throughput (frames/s)", ("throughput", "throughput_fps", "fps", "frames_per_s")),
    ("Model version", ("model_version", "model")),
    ("Error", ("error",)),
)

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } img { max-width: 100%; border: 1px solid #eee; margin: 4px 0; }
.legend { background: #f8f8f8; border-left: 4px solid #888; padding: 0.5em 1em; }
.muted { color: #777; font-size: 0.9em; }
"""


def _flatten(data: dict, prefix: str = "") -> list[tuple[str, object]]:
    rows = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(_flatten(value, name + "."))
        else:
            rows.append((name, value))
    return rows


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        text = json.dumps(value)
        return text if len(text) <= 200 else text[:197] + "..."
    return str(value)


def _table(rows: Sequence[tuple[object, ...]], head: tuple[str, ...] | None = None) -> str:
    out = ["<table>"]
    if head:
        out.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>")
    for row in rows:
        cells = row if isinstance(row, (list, tuple)) else (row,)
        out.append("<tr>" + "".join(
            f"<{'th' if i == 0 and not head else 'td'}>{html.escape(_fmt(c))}"
            f"</{'th' if i == 0 and not head else 'td'}>" for i, c in enumerate(cells)) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _summary_rows(summary: dict, cols: _Columns) -> list[tuple[str, str]]:
    derived = {
        "Frames": f"{len(set(zip(cols.stream_id, cols.frame_index)))} with faces (from the dataset)",
        "Faces (records)": f"{len(cols.pts)} (from the dataset)",
        "Tracks": f"{len({(s, t) for s, t in zip(cols.stream_id, cols.track_id)})} (from the dataset)",
        "Persons": f"{len({(s, p) for s, p in zip(cols.stream_id, cols.person_id)})} (from the dataset)",
        "Throughput (frames/s)": "— (no summary.json)",
        "Model version": ", ".join(sorted({str(m) for m in cols.model_version})) or "—",
    }
    flat = dict(_flatten(summary))
    rows = []
    for label, keys in _SUMMARY_ROWS:
        value = next((flat[k] for k in keys if k in flat), None)
        if value is None and label not in derived:
            continue
        rows.append((label, _fmt(value) if value is not None else derived[label]))
    return rows


def _person_rows(cols: _Columns, person_of: dict[int, int]) -> list[tuple[int, str, int, str]]:
    """Per person of one stream: its tracks, records and the seconds its tracks cover."""
    dt = _frame_dt(cols.pts)
    rows = []
    for pid in sorted(set(person_of.values())):
        tracks = sorted(t for t, p in person_of.items() if p == pid)
        sel = np.isin(cols.track_id, tracks)
        seen = len(np.unique(cols.pts[sel])) * dt
        rows.append((pid, ", ".join(map(str, tracks)), int(sel.sum()), f"{seen:.1f}"))
    return rows


def _img(rel: str, alt: str) -> str:
    return f'<img src="{html.escape(rel)}" alt="{html.escape(alt)}" loading="lazy">'


def _html(out_dir: Path, summary: dict, summary_note: str | None, cols: _Columns,
          metadata: dict[bytes, bytes], streams: list[dict]) -> str:
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>facestream report — {html.escape(out_dir.name or str(out_dir))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>facestream report</h1><p class=\"muted\">{html.escape(str(out_dir))}</p>",
        "<h2>Summary</h2>", _table(_summary_rows(summary, cols)),
    ]
    if summary_note:
        parts.append(f'<p class="muted">{html.escape(summary_note)}</p>')
    stream_rows = [(s["stream_id"], s["records"], s["tracks"], len(s["persons"]), s["plotted"],
                    f"{s['t0']:.2f} – {s['t1']:.2f}") for s in streams]
    parts.append(_table(stream_rows, ("stream", "records", "tracks", "persons", "tracks plotted", "time (s)")))
    if summary:
        parts.append("<details><summary>All fields of summary.json</summary>"
                     + _table(_flatten(summary)) + "</details>")
    meta_rows = [(k.decode(errors="replace"), v.decode(errors="replace"))
                 for k, v in sorted(metadata.items()) if k.startswith(b"facestream.")]
    if meta_rows:
        parts.append("<details><summary>Dataset metadata</summary>" + _table(meta_rows) + "</details>")
    parts.append(
        '<div class="legend"><b>How to read the plots.</b><ul>'
        "<li><b>Pose</b> is in degrees with AFLW2000-3D signs, as seen in the image: "
        "<b>yaw &gt; 0</b> the face turns toward the image's left (the subject turns to their right); "
        "<b>pitch &gt; 0</b> the face looks up (chin up); "
        "<b>roll &gt; 0</b> the face rotates clockwise in the image. A frontal face is (0, 0, 0). "
        "Thin light lines are the network's per-frame (raw) output, solid lines the smoothed values.</li>"
        "<li><b>Expression</b>: the 29 eta coefficients of the face model are shown as heatmaps "
        "(raw left, smoothed right; red positive, blue negative, one colour scale for both). "
        "The curves above them read the smoothed eta as ARKit-named blendshapes (0 = neutral, "
        "1 = full): jawOpen, and the left/right averages of mouthSmile, browInnerUp, eyeBlink "
        "and browDown.</li>"
        "<li><b>Emotion</b>: the smoothed probabilities of the seven classes stacked to one "
        "over time (read from eta alone by the classifier shipped with the network), and "
        "below them the label the track carried: a class, or grey where it abstained "
        "(light: uncertain, below the minimum probability; mid: too small; dark: too turned; "
        "darkest, bluish: too dark, the face too dim or flat in light to show an expression; "
        "beige: too blurred, the face too smooth to show one).</li>"
        f"<li>Tracks with at least {MIN_TRACK_RECORDS} records are plotted, at most the "
        f"{MAX_TRACKS_PER_STREAM} longest per stream, under the person they show; the overview "
        "shows when each track is present, one colour per person (faded: not plotted below).</li>"
        "<li><b>Persons</b>: the tracks of one face share a person id (the id of its first track), "
        "found by a face-identity embedding: after an occlusion, an exit, or a shot cut.</li></ul></div>"
    )
    for s in streams:
        parts.append(f"<h2>Stream {html.escape(s['stream_id'])}</h2>")
        parts.append(_img(s["overview"], f"overview of stream {s['stream_id']}"))
        parts.append(_table(s["persons"], ("person", "tracks", "records", "seconds seen")))
        if not s["track_images"]:
            parts.append(f'<p class="muted">No track has {MIN_TRACK_RECORDS} or more records.</p>')
        current = None
        for pid, tid, n, t0, t1, pose_rel, exp_rel, emo_rel in s["track_images"]:
            if pid != current:
                parts.append(f"<h3>Person {pid}</h3>")
                current = pid
            parts.append(f"<h4>Track {tid}</h4><p class=\"muted\">{n} records, "
                         f"{t0:.2f} – {t1:.2f} s</p>")
            parts.append(_img(pose_rel, f"pose of track {tid}"))
            parts.append(_img(exp_rel, f"expression of track {tid}"))
            parts.append(_img(emo_rel, f"emotion of track {tid}"))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------
def _load(out_dir: Path) -> pa.Table:
    try:
        table = read_dataset(out_dir)
    except FileNotFoundError as e:
        raise ReportError(f"{out_dir}: no facestream dataset to report on ({e})") from None
    if table.num_rows == 0:
        raise ReportError(f"{out_dir}: the facestream dataset holds no records")
    return table


def write_report(out_dir: str | Path) -> Path:
    """Write ``out_dir/report/`` (PNG plots + index.html); returns the index.html path.

    Raises :class:`ReportError` when ``out_dir`` holds no dataset or no records.
    """
    out_dir = Path(out_dir)
    table = _load(out_dir)
    metadata = dict(table.schema.metadata or {})
    cols = _columns(table)
    summary, summary_note = _read_summary(out_dir)
    curves = _curve_indices(blendshape_names(metadata))
    pose_plot, expression_plot, ribbon = None, None, None

    final = out_dir / "report"
    # A hidden sibling (mkdir honours the umask, unlike mkdtemp's 0700), swapped in at the end.
    work = out_dir / f".report-tmp-{os.getpid()}-{secrets.token_hex(4)}"
    work.mkdir()
    try:
        streams = []
        stream_ids = sorted({str(s) for s in cols.stream_id})
        for sid in stream_ids:
            scols = cols.take(np.flatnonzero(cols.stream_id == sid))
            sub = partition_name(sid)   # path-safe and distinct per stream id
            (work / sub).mkdir()
            tracks, counts = np.unique(scols.track_id, return_counts=True)
            eligible = counts >= MIN_TRACK_RECORDS
            tracks_e, counts_e = tracks[eligible], counts[eligible]
            chosen = tracks_e[np.lexsort((tracks_e, -counts_e))[:MAX_TRACKS_PER_STREAM]]
            person_of = {int(t): int(scols.person_id[np.argmax(scols.track_id == t)]) for t in tracks}
            chosen = np.array(sorted(chosen, key=lambda t: (person_of[int(t)], int(t))), np.int64)

            _plot_overview(scols, sid, {int(t) for t in chosen}, work / sub / "overview.png")
            track_images = []
            for tid in chosen:
                tid = int(tid)
                idx = np.flatnonzero(scols.track_id == tid)
                tcols = scols.take(idx[np.argsort(scols.pts[idx], kind="stable")])
                pose_rel, exp_rel = f"{sub}/track-{tid}-pose.png", f"{sub}/track-{tid}-expression.png"
                emo_rel = f"{sub}/track-{tid}-emotion.png"
                pose_plot = pose_plot or _PosePlot()
                expression_plot = expression_plot or _ExpressionPlot(curves)
                ribbon = ribbon or EmotionRibbon(emotion_classes(metadata), DPI)
                pose_plot.save(tcols, sid, tid, work / pose_rel)
                expression_plot.save(tcols, sid, tid, work / exp_rel)
                ribbon.save(tcols.pts, tcols.emotion_probs, tcols.emotion,
                            f"stream {sid} · track {tid}: emotion (smoothed probabilities, label)", work / emo_rel)
                track_images.append((person_of[tid], tid, len(idx), float(tcols.pts[0]), float(tcols.pts[-1]),
                                     pose_rel, exp_rel, emo_rel))
            streams.append({
                "stream_id": sid, "records": len(scols.pts), "tracks": len(tracks),
                "plotted": len(chosen), "t0": float(scols.pts.min()), "t1": float(scols.pts.max()),
                "persons": _person_rows(scols, person_of),
                "overview": f"{sub}/overview.png", "track_images": track_images,
            })
        (work / "index.html").write_text(
            _html(out_dir, summary, summary_note, cols, metadata, streams), encoding="utf-8")
        _swap_into_place(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        for plot in (pose_plot, expression_plot, ribbon):
            if plot is not None:
                plot.close()
    return final / "index.html"


def _swap_into_place(work: Path, final: Path) -> None:
    """Replace ``final`` by ``work``: the old report is moved aside first, then removed."""
    old = None
    if final.exists():
        old = final.with_name(f".report-old-{work.name.rsplit('-', 1)[-1]}")
        os.replace(final, old)
    os.replace(work, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
