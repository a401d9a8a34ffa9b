"""Draw FaceRecords back onto their video: box, track id and emotion, head-pose axes, angles.

``annotate_video(video_path, records, out_path)`` re-decodes the source (every frame, as
``open_source(path, SourceConfig())`` yields them, so ``Frame.index`` is the records'
``frame_index``), draws the records of each frame and encodes the result with PyAV as
H.264 (libx264, yuv420p) at the source frame rate. Frames without records are written
unchanged. Odd frame sizes are padded by one pixel (edge colour) on the right/bottom,
because yuv420p needs even dimensions; drawing coordinates are unchanged by that.

Pose axes follow workers/pose.py: model frame +x image right, +y up, +z toward the
viewer. The rotation comes from the record's smoothed quaternion (or, if that is not a
usable quaternion, from its yaw/pitch/roll); axis endpoints are projected orthographically
from the head centre (tx, ty) with image u = tx + L·x, v = ty - L·y, L = ``axis_scale`` ×
box width. x is red, y green, z blue; the axis pointing furthest away is drawn first.

The output is written to a hidden temp file beside ``out_path`` and renamed into place
when complete, so a crash never leaves a half file that looks whole. Progress goes to an
``on_progress`` callback (the CLI draws the bar): this module prints nothing.
"""
from __future__ import annotations

import logging
import os
import secrets
from collections import defaultdict
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import cv2
import numpy as np

from streamer.config import AnnotateConfig, Config, SourceConfig
from streamer.data.record import FaceRecord
from streamer.sources.files import open_source
from workers.pose import matrix_from_euler, matrix_from_quaternion

log = logging.getLogger(__name__)

# Container format by output suffix; anything else is written as MP4.
_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
_DEFAULT_FPS = 30.0

# RGB (the frames are RGB): axes x, y, z.
_AXIS_COLORS = ((255, 40, 40), (40, 220, 40), (60, 90, 255))
# Track colours, picked by track id: bright, and none close to the axis colours.
_TRACK_COLORS = (
    (255, 215, 0), (0, 230, 230), (255, 105, 180), (255, 140, 0), (180, 120, 255),
    (170, 255, 90), (255, 255, 255), (0, 190, 140),
)

# (frames written, frames the source expects or None); called after every frame
ProgressCallback = Callable[[int, "int | None"], None]


def annotate_video(video_path: str | os.PathLike, records: list[FaceRecord],
                   out_path: str | os.PathLike, cfg: AnnotateConfig | Config | None = None,
                   on_progress: ProgressCallback | None = None) -> Path:
    """Write ``out_path``: the video with ``records`` drawn on their frames; returns it.

    ``records`` are the records of this one video (one stream id), in any order.
    ``cfg`` is an :class:`~streamer.config.AnnotateConfig`, or the run's
    :class:`~streamer.config.Config` (its ``annotate`` section); None: the defaults.
    """
    cfg = cfg.annotate if isinstance(cfg, Config) else cfg or AnnotateConfig()
    out_path = Path(out_path)
    if Path(video_path).resolve() == out_path.resolve():
        raise ValueError(f"{out_path}: the annotated video may not overwrite its source")
    streams = {r.stream_id for r in records}
    if len(streams) > 1:
        raise ValueError(f"records of several streams given ({', '.join(sorted(streams))}); "
                         "pass the records of this video's stream only")
    by_frame: dict[int, list[FaceRecord]] = defaultdict(list)
    for rec in records:
        by_frame[int(rec.frame_index)].append(rec)

    source = open_source(str(video_path), SourceConfig())
    fps = source.fps if source.fps and np.isfinite(source.fps) else _DEFAULT_FPS
    rate = Fraction(fps).limit_denominator(1001)
    width, height = source.width + source.width % 2, source.height + source.height % 2

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.{secrets.token_hex(4)}.tmp")
    drawn = 0
    container = av.open(str(tmp), mode="w", format=_FORMATS.get(out_path.suffix.lower(), "mp4"))
    try:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = 1 / rate
        stream.options = {"crf": str(cfg.crf), "preset": cfg.preset}
        for n, frame in enumerate(source):
            image = frame.image
            recs = by_frame.pop(frame.index, None)
            if recs:
                image = np.ascontiguousarray(image).copy()
                for rec in recs:
                    _draw_record(image, rec, cfg)
                drawn += 1
            if image.shape[0] != height or image.shape[1] != width:
                image = np.pad(image, ((0, height - image.shape[0]),
                                       (0, width - image.shape[1]), (0, 0)), mode="edge")
            out = av.VideoFrame.from_ndarray(image, format="rgb24")
            out.pts, out.time_base = n, 1 / rate
            container.mux(stream.encode(out))
            if on_progress is not None:
                on_progress(n + 1, source.frame_count_estimate)
        container.mux(stream.encode(None))
        container.close()
        os.replace(tmp, out_path)
    except BaseException:
        try:
            container.close()
        except Exception:
            pass
        tmp.unlink(missing_ok=True)
        raise
    finally:
        source.close()
    if by_frame:
        log.warning("%s: %d records name frames the video does not have (first: frame %d)",
                    video_path, sum(len(v) for v in by_frame.values()), min(by_frame))
    log.info("annotated %d frames of %s into %s", drawn, video_path, out_path)
    return out_path


# --------------------------------------------------------------------------------------
# drawing
# --------------------------------------------------------------------------------------
def rotation_of(rec: FaceRecord, use_quaternion: bool = True) -> np.ndarray:
    """The record's smoothed head rotation: from its quaternion when that is a usable
    (near-unit, finite) quaternion, else from its yaw/pitch/roll."""
    q = np.asarray(rec.quaternion, dtype=np.float64)
    norm = float(np.linalg.norm(q)) if q.size == 4 else 0.0
    if use_quaternion and np.isfinite(norm) and 0.9 < norm < 1.1:
        return matrix_from_quaternion(q)
    yaw, pitch, roll = (float(v) for v in np.asarray(rec.pose, dtype=np.float64)[:3])
    return matrix_from_euler(yaw, pitch, roll)


def axis_endpoints(rec: FaceRecord, axis_scale: float = 0.5,
                   use_quaternion: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Origin (u, v), the three axis end points (3, 2) in image pixels, and each axis's
    depth toward the viewer (3,), by orthographic projection with v = ty - L·y."""
    R = rotation_of(rec, use_quaternion)
    x1, _, x2, _ = (float(v) for v in rec.box)
    length = axis_scale * abs(x2 - x1)
    origin = np.array([float(rec.pose[3]), float(rec.pose[4])])
    ends = origin[None, :] + length * np.stack([R[0, :], -R[1, :]], axis=1)
    return origin, ends, R[2, :].copy()


def _pt(p, limit: int) -> tuple[int, int]:
    return (int(round(np.clip(p[0], -limit, limit))), int(round(np.clip(p[1], -limit, limit))))


def _text(image: np.ndarray, text: str, org: tuple[int, int], scale: float, color) -> None:
    """Text with a dark background box so it reads on any frame."""
    thick = max(1, int(round(scale * 1.5)))
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    x = min(max(org[0], 0), max(0, image.shape[1] - w))
    y = min(max(org[1], h + 1), image.shape[0] - base - 1)
    cv2.rectangle(image, (x - 1, y - h - 1), (x + w + 1, y + base), (0, 0, 0), cv2.FILLED)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, color, thick, cv2.LINE_AA)


def draw_records(image: np.ndarray, records: list[FaceRecord], cfg: AnnotateConfig | None = None) -> np.ndarray:
    """Draw ``records`` (in ``image``'s pixels) onto the RGB ``image`` in place, as the
    annotated video does; returns it. The live view (streamer/view/) draws its frames so."""
    for rec in records:
        _draw_record(image, rec, cfg or AnnotateConfig())
    return image


def _draw_record(image: np.ndarray, rec: FaceRecord, cfg: AnnotateConfig) -> None:
    box = np.asarray(rec.box, dtype=np.float64)
    pose = np.asarray(rec.pose, dtype=np.float64)
    if box.size != 4 or not np.all(np.isfinite(box)):
        return
    h, w = image.shape[:2]
    limit = 4 * max(h, w)
    side = min(h, w)
    thick = max(2, int(round(side / 360)))
    scale = max(0.3, side / 900)
    # one colour a person (a track's, where there are no persons), so a face keeps it across tracks
    key = rec.person_id if rec.person_id is not None else rec.track_id
    color = _TRACK_COLORS[int(key) % len(_TRACK_COLORS)]
    p1, p2 = _pt(box[:2], limit), _pt(box[2:], limit)
    cv2.rectangle(image, p1, p2, color, thick)
    # the person and the smoothed emotion beside the track id; "" in data written before them
    person = f"P{int(rec.person_id)} " if rec.person_id is not None else ""
    emotion = f" {rec.emotion}" if rec.emotion else ""
    _text(image, f"{person}id {int(rec.track_id)}{emotion}", (p1[0], p1[1] - thick - 2), scale, color)

    if pose.size >= 5 and np.all(np.isfinite(pose[:5])):
        origin, ends, depth = axis_endpoints(rec, cfg.axis_scale, cfg.use_quaternion)
        o = _pt(origin, limit)
        for k in np.argsort(depth):            # farthest axis first, nearest on top
            cv2.line(image, o, _pt(ends[k], limit), _AXIS_COLORS[k], thick, cv2.LINE_AA)
        cv2.circle(image, o, thick + 1, (255, 255, 255), cv2.FILLED, cv2.LINE_AA)
    if cfg.show_angles and pose.size >= 3 and np.all(np.isfinite(pose[:3])):
        label = f"y{pose[0]:+.0f} p{pose[1]:+.0f} r{pose[2]:+.0f}"
        (_, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        _text(image, label, (p1[0], p2[1] + thick + th + 3), scale, color)
