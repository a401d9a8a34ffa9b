"""Find the face in an image that is nothing but a face: look again on a larger canvas.

RetinaFace, like most detectors, misses a face that fills its image edge to edge: the
dataset crops users hand to ``facestream predict`` (FER2013's 48-px faces, aligned crops
from a face database, a photo cut tight around a head) carry no context around the face,
and nothing in its anchors fits a face that is the whole frame. On FER2013's 2,856
held-out faces ``predict`` found 35% with the detector alone and finds 98% with this
(bench/predict_in_the_wild.py --set fer, docs/accuracy.md).
The label builder solved the same problem for its teachers by showing each small frame
enlarged on a black canvas (training/wild_teach.py); this is that idea as a
detector strategy, so that ``predict`` sees these faces the way the model was taught.

Only images where the detector finds nothing are looked at again, so images with faces
cost nothing more. A stream does not use it: a frame without faces is common there and
would pay for a second detection each time.
"""
from __future__ import annotations

import cv2
import numpy as np

from workers.detector import Detector
from workers.prediction import Detections

CANVAS = 320        # side of the black square the image is shown on (px)
IMAGE_SHARE = 0.6   # the image's longer side on it: 192 of 320 px, as the FER labels had


def on_canvas(image: np.ndarray, canvas: int = CANVAS,
              share: float = IMAGE_SHARE) -> tuple[np.ndarray, float, np.ndarray]:
    """The image resized so its longer side is ``share`` of ``canvas`` and centred on a
    black square; returns (canvas image, scale, offset) with canvas = image * scale + offset."""
    h, w = image.shape[:2]
    scale = share * canvas / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    offset = np.array([(canvas - nw) // 2, (canvas - nh) // 2], np.float32)
    out = np.zeros((canvas, canvas, 3), np.uint8)
    interpolation = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
    out[int(offset[1]):int(offset[1]) + nh, int(offset[0]):int(offset[0]) + nw] = cv2.resize(
        image, (nw, nh), interpolation=interpolation)
    return out, scale, offset


def back_to_image(det: Detections, scale: float, offset: np.ndarray) -> Detections:
    """Detections on the canvas, in the original image's pixels."""
    boxes = (det.boxes.reshape(-1, 2, 2) - offset) / scale
    points = (det.landmarks - offset) / scale
    return Detections(boxes.reshape(-1, 4).astype(np.float32), det.scores, points.astype(np.float32))


class PaddedRetry:
    """A detector that asks ``inner`` once more, on a canvas, about the images where it
    found no face (module docstring). Boxes may reach past the image's edges, as a face
    that fills the frame does; the crop rule fills outside the image as training did."""

    def __init__(self, inner: Detector, canvas: int = CANVAS, share: float = IMAGE_SHARE) -> None:
        self.inner = inner
        self.canvas = canvas
        self.share = share

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        found = self.inner.detect(images)
        missed = [i for i, d in enumerate(found) if not len(d)]
        if not missed:
            return found
        framed = [on_canvas(images[i], self.canvas, self.share) for i in missed]
        again = self.inner.detect([f[0] for f in framed])
        for i, det, (_img, scale, offset) in zip(missed, again, framed):
            found[i] = back_to_image(det, scale, offset)
        return found
