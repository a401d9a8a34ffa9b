"""``predict``: faces in still images, in this process (no Ray), one line or one JSON
object per face.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from streamer.cli.errors import UserError


def _read_image(path: str):
    import cv2

    p = Path(path)
    if not p.is_file():
        raise UserError(f"{path}: {'is not a regular file' if p.exists() else 'does not exist'}", 3)
    image = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"{path}: not a readable image", 4)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _whole_image_box(image, enlarge: float):
    """The box whose crop, under the checkpoint's rule, is exactly the (square) image."""
    import numpy as np

    h, w = image.shape[:2]
    side = max(h, w) / (1 + 2 * enlarge)
    cx, cy = w / 2, h / 2
    return np.array([[cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]], np.float32)


def predict_command(args) -> int:
    from streamer.config import load_config

    cfg = load_config(args.config, {"model": {"checkpoint": args.checkpoint}} if args.checkpoint else None)
    images = [(path, _read_image(path)) for path in args.images]  # every input, before model imports

    import numpy as np

    from streamer.pipeline.checkpoint_check import check_checkpoint
    from streamer.pipeline.records import pose_in_image
    from workers import emotion, face_model
    from workers.crops import CropRule
    from workers.pipeline import crop_boxes, detect_crop_regress, regress
    from workers.regressor import Regressor

    fm = face_model.load()
    ckpt, _ = check_checkpoint(cfg)
    regressor = Regressor.load(str(ckpt), cfg.model.device, cfg.model.emotion, cfg.model.runtime)
    rule = CropRule.from_meta(regressor.meta)
    detector = None
    if not args.no_detect:
        from workers.detector import FaceDetector
        from workers.padded_retry import PaddedRetry

        # a still may be a face and nothing else (a dataset crop): look again on a canvas
        detector = PaddedRetry(FaceDetector(cfg.detector, threads=os.cpu_count() or 1))
    from tqdm import tqdm

    found = 0
    # a bar on stderr for a folder of images; silent when stderr is not a terminal or for one image
    for path, image in tqdm(images, unit="image", desc="predict", disable=None if len(images) > 1 else True,
                            leave=False, dynamic_ncols=True):
        if detector is None:
            box = _whole_image_box(image, rule.enlarge)
            faces = regress([crop_boxes(image, box, np.ones(1, np.float32), rule)], regressor, rule)[0]
        else:
            faces = detect_crop_regress([image], detector, regressor, rule)[0]
        if not len(faces):
            continue
        boxes, scores, pred = faces.boxes, faces.scores, faces.prediction
        assert pred is not None  # faces were found and regressed
        poses = pose_in_image(pred, faces.affines)
        blends = fm.blendshapes_from_eta(pred.expression)  # one batched solve per image
        face_px = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        labels = emotion.label(pred.emotion_probs, face_px=face_px, yaw=poses[:, 0], pitch=poses[:, 1],
                               rule=cfg.emotion.for_reader(regressor.emotion_source), luminance=pred.luminance,
                               contrast=pred.contrast, sharpness=pred.sharpness)
        for i in range(len(boxes)):
            face = _face_dict(path, boxes[i], scores[i], pred, poses[i], i)
            face["blendshapes"] = dict(zip(fm.blend_names, (round(float(w), 3) for w in blends[i])))
            face["emotion"] = labels[i]
            # null without a classifier beside the checkpoint (JSON has no NaN)
            face["emotion_probs"] = (dict(zip(emotion.CLASSES, (round(float(p), 4) for p in pred.emotion_probs[i])))
                                     if np.isfinite(pred.emotion_probs[i]).all() else None)
            tqdm.write(json.dumps(face) if args.json else _face_line(face, i))  # clears the bar first
        found += len(boxes)
    if not found:
        raise UserError(f"no face found in {len(images)} image(s)", 7)
    return 0


def _face_dict(path, box, score, pred, pose, i) -> dict:
    def floats(values) -> list[float]:
        return [round(float(v), 6) for v in values]

    yaw, pitch, roll, tx, ty, scale = floats(pose)
    return {"image": path, "box": floats(box), "score": round(float(score), 6),
            "expression": floats(pred.expression[i]),
            "pose": {"yaw": yaw, "pitch": pitch, "roll": roll, "tx": tx, "ty": ty, "scale": scale},
            "quaternion": floats(pred.quaternion[i]), "shape": floats(pred.shape[i])}


def _face_line(face: dict, i: int) -> str:
    p, b = face["pose"], face["box"]
    top = sorted(face["blendshapes"].items(), key=lambda kv: -kv[1])[:3]
    return (f"{face['image']} face {i}: box ({b[0]:.0f}, {b[1]:.0f}, {b[2]:.0f}, {b[3]:.0f}) "
            f"score {face['score']:.3f}  yaw {p['yaw']:+.1f} pitch {p['pitch']:+.1f} "
            f"roll {p['roll']:+.1f} deg  centre ({p['tx']:.1f}, {p['ty']:.1f}) px  "
            f"scale {p['scale']:.2f} px/cm  " + " ".join(f"{n} {w:.2f}" for n, w in top)
            + f"  emotion {face['emotion']}" + _top_prob(face["emotion"], face["emotion_probs"]))


def _top_prob(label: str, probs: dict | None) -> str:
    """" 0.83" after a class label; " (happy 0.35)" after an abstention: the most likely
    class and its probability, so an abstaining face still says what it looked like."""
    if not probs:
        return ""
    name, p = max(probs.items(), key=lambda kv: kv[1])
    return f" {p:.2f}" if name == label else f" ({name} {p:.2f})"
