"""Face identity: dlib's ResNet face embedding on patches cut around detector boxes.

Each tracked face gets a 128-D embedding so that tracks of one person can share a
``person_id`` (DESIGN.md, "Persons"). The model is dlib's face recognition ResNet
(``dlib_face_recognition_resnet_model_v1``) behind its 5-point shape predictor, both
shipped as weights inside the ``face_recognition_models`` package (CC0); ``dlib-bin``
gives the ``dlib`` module. Nothing is downloaded.

A session cuts a square patch around each RetinaFace box with :class:`IdentityCropRule`
(cheap, numpy + cv2, no dlib) and a replica embeds batches of patches with
:class:`FaceIdentity`: the 5-point predictor places eyes and nose in the patch, dlib
aligns the face chip (150 x 150) from them, and the ResNet maps the chips, one batched
call, to 128-D descriptors. Cost, one thread (dlib-bin runs its CPU network on one):
about 78 ms of CPU per face, the same at batch 1 and 8 (the batched call saves nothing on
a CPU), plus 0.3 ms to cut the patch. The predictor was trained on dlib's own detector boxes, which
are squarer and sit lower on the face than RetinaFace's; the rectangle it is given is the
RetinaFace box mapped to a dlib-like one (``_DLIB_RECT``, measured in
``bench/identity_accuracy.py``).

Coordinates follow :mod:`workers.crops`: continuous pixel coordinates, pixel (i, j)
covers [i, i+1) x [j, j+1), in the image and in the patch.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workers.crops import CropRule, crop_faces

IDENTITY_DIM = 128

# The dlib-like rectangle for the shape predictor, relative to the square face box in the
# patch (side s, centre c): centre c + (dx, dy) * s, side k * s. dlib's HOG detector box
# relative to RetinaFace's, median over 215 faces of 17 clips (bench/identity_accuracy.py):
# 0.80 of the side, 0.05 of it lower. Kept because it is what the predictor was trained on;
# on these faces it measures the same as the box itself within noise (eye centres within
# 0.075 / 0.100 inter-ocular at p90 / p99 vs 0.074 / 0.104; clip pair AUC 0.9999 both;
# largest same-clip distance 0.401 vs 0.410).
_DLIB_RECT = (-0.005, 0.048, 0.804)


@dataclass(frozen=True)
class IdentityCropRule:
    """How a session cuts the patch the identity model reads around a detector box."""

    side: int = 160          # patch side in pixels
    margin: float = 1.6      # patch covers margin * max(w, h) of the box, centred on the box centre

    def _rule(self) -> CropRule:
        return CropRule(size=self.side, enlarge=(self.margin - 1.0) / 2.0)

    def cut(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(N, side, side, 3) uint8 patches of an RGB uint8 image for x1y1x2y2 boxes (N, 4)
        in image pixels; zero padding outside the frame."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        return crop_faces(image, boxes, self._rule())[0]

    def box_in_patch(self) -> tuple[float, float, float, float]:
        """Where the (square) face box sits in every patch (x1, y1, x2, y2), patch pixels."""
        half = self.side / (2.0 * self.margin)
        c = self.side / 2.0
        return (c - half, c - half, c + half, c + half)


def _model_file(name: str) -> str:
    """Path of a weights file inside the installed face_recognition_models package, found
    without importing it (its __init__ needs pkg_resources, i.e. setuptools)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face_recognition_models is not installed (see requirements.txt)")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise RuntimeError(f"face_recognition_models has no {path.name}")
    return str(path)


class FaceIdentity:
    """dlib's face embedding: 5-point alignment then the ResNet; one instance per process.

    Embeddings are dlib's descriptors L2-normalised (unit rows; dlib's own have norms about
    1.4), compared by :meth:`distance`: the Euclidean distance between directions (0 to 2;
    sqrt(2 * cosine distance)). On the clips of ``bench/identity_accuracy.py`` that separates
    people better than dlib's raw Euclidean distance (pair AUC 0.9999 vs 0.9997; the largest
    same-person track-mean distance is 0.62 of the smallest different-person one, vs 0.64),
    and it lets a mean of embeddings be compared as it is. Distances are therefore not on the
    scale of dlib's documented 0.6 threshold (a raw 0.6 is about 0.42 here).
    """

    def __init__(self, rule: IdentityCropRule | None = None,
                 dlib_rect: tuple[float, float, float] = _DLIB_RECT) -> None:
        """``dlib_rect`` (dx, dy, k): the shape predictor's rectangle relative to the face
        box in the patch (see ``_DLIB_RECT``); only benchmarks change it."""
        import dlib  # type: ignore[import-untyped]

        self.rule = rule or IdentityCropRule()
        self._dlib = dlib
        self._shape = dlib.shape_predictor(_model_file("shape_predictor_5_face_landmarks.dat"))
        self._net = dlib.face_recognition_model_v1(_model_file("dlib_face_recognition_resnet_model_v1.dat"))
        x1, y1, x2, y2 = self.rule.box_in_patch()
        s, cx, cy = x2 - x1, (x1 + x2) / 2, (y1 + y2) / 2
        dx, dy, k = dlib_rect
        cx, cy, half = cx + dx * s, cy + dy * s, k * s / 2
        self._rect = dlib.rectangle(int(round(cx - half)), int(round(cy - half)),
                                    int(round(cx + half)) - 1, int(round(cy + half)) - 1)

    def landmarks(self, patches: np.ndarray) -> np.ndarray:
        """(N, 5, 2) the shape predictor's 5 points in patch pixels (dlib's order)."""
        return np.array([[(p.x, p.y) for p in self._shape(patch, self._rect).parts()]
                         for patch in self._check(patches)], np.float64).reshape(-1, 5, 2)

    def embed(self, patches: np.ndarray) -> np.ndarray:
        """(N, 128) float32 for (N, side, side, 3) uint8 RGB patches cut with IdentityCropRule (N may be 0)."""
        patches = self._check(patches)
        if len(patches) == 0:
            return np.zeros((0, IDENTITY_DIM), np.float32)
        images = [np.ascontiguousarray(p) for p in patches]
        chips = [self._dlib.get_face_chip(img, self._shape(img, self._rect), size=150, padding=0.25)
                 for img in images]
        out = self._net.compute_face_descriptor(chips)   # one batched ResNet call
        e = np.asarray([np.asarray(v) for v in out], np.float64).reshape(-1, IDENTITY_DIM)
        return (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32)

    def _check(self, patches: np.ndarray) -> np.ndarray:
        patches = np.asarray(patches)
        side = self.rule.side
        if patches.ndim != 4 or patches.shape[1:] != (side, side, 3) or patches.dtype != np.uint8:
            raise ValueError(f"expected (N, {side}, {side}, 3) uint8 patches, got {patches.shape} {patches.dtype}")
        return patches

    @staticmethod
    def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """(M, N) distances between rows of a and b in the metric the thresholds below are set in:
        Euclidean between the rows' directions (rows are L2-normalised first, so means of
        embeddings, e.g. a track's running mean, may be passed as they are)."""
        a = _unit(np.asarray(a, np.float64).reshape(-1, IDENTITY_DIM))
        b = _unit(np.asarray(b, np.float64).reshape(-1, IDENTITY_DIM))
        return np.sqrt(np.clip(2.0 - 2.0 * a @ b.T, 0.0, 4.0))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


# Calibrated on the scale of `distance` with bench/identity_accuracy.py: 17 single-person
# clips (16 people: 5 East Asian, the rest white/Latina/Black; talking heads, |yaw| up to
# 34 deg), 13 frames each (10 spread over the clip + 3 most turned), 215 faces; plus 25
# web photos (smoke test). On the clips: same-person track means (half a clip against the
# other half) at most 0.164 apart, a sample from the mean of its clip's other frames at
# most 0.269 (p95 0.232); different people's means at least 0.310 apart (lp_d0-vr_1, two
# East Asian men; the closest different pairs are East Asian ones), a sample from another
# person's mean at least 0.318 (p5 0.402). Same-person photos years apart reach 0.396.
# dlib's documented 0.6 (raw) is about 0.42 here: it would falsely link 13% of the
# different-person track-mean pairs on this data, and an outside test found it gives
# same/different accuracy of only 0.10 / 0.45 on East Asian faces -- a fixed threshold does
# not transfer between populations, so the link threshold is set conservatively, well
# below the closest different pair seen, for linking within one video; a gallery across
# streams or years needs its own calibration.
#
# Link a track (mean) to a person (mean) below this. At 0.24: false links 0 and missed
# links 0 of track means; a single sample misses its own clip mean 3.7% of the time (1.4%
# at 0.26) and never links to another person (pair false links 0 up to 0.30). Looser: 0.32
# -> 0.7% of track-mean pairs falsely linked, 0.36 -> 1.1%, 0.40 -> 7.4%. Set at 0.26: on
# bench/persons_reentry.py (short shots, a track's first samples against a person seen in
# one earlier shot) 0.24 split one person in two, 0.26-0.30 found every person; 0.26 keeps
# the widest margin (0.05) below the closest different people seen.
SAME_PERSON_MAX: float = 0.26
# A sample this far from its track's running mean: the identity jumped (streamer.persons.book
# asks for a second sample at once and splits only when both are this far). On the clips:
# at 0.30 false splits 0 and missed jumps 0 of samples; 0.26 -> 1.4% false splits, 0.34 ->
# 0.6% missed jumps, 0.40 -> 4.8%. Set at 0.40: on the real documentary clip
# (cuts/documentary_576p.mp4) a woman of 50 px turning from yaw +9 to -30 and looking down
# was split at 0.30, not at 0.40 (her own samples reach 0.30 from her mean there); a
# missed cut, the case this guards, shows another face on every later sample too.
SPLIT_MIN: float = 0.40
# Shorter box side (as the detector's min_face_px counts) below which a sample links
# nothing: frames shrunk to 32 px stay within 0.24 (p95) of their full-size clip mean (5%
# of them at or beyond SAME_PERSON_MAX) and never reach SPLIT_MIN; at 28 px 19% miss
# SAME_PERSON_MAX, at 24 px 40% and 3.5% would split, at 20 px 77% and 19%. Different
# people stayed >= 0.31 apart at every size.
MIN_FACE_PX: int = 32
