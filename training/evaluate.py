"""Accuracy of a checkpoint (``facestream evaluate``), on data it did not train on.

* Held-out renders (their own seeds; sparse shapes and facial actions): per-component eta
  RMSE and Pearson correlation, pose MAE per axis, 68-landmark NME (by the landmark box,
  AFLW2000-3D's convention, and by inter-ocular distance; overall and by |yaw|), identity
  alpha RMSE and the error it makes in mm at the landmark vertices.
* Held-out real faces (clips and photos never used in training) against the teacher's
  labels: pose MAE per axis, eta RMSE and correlation, and the agreement of readable
  blendshapes (jaw open, smile, blink, brow raise).
* The teacher itself on renders, where the truth is known: how good the labels are.
* Held-out faces in the wild (training/evaluate_wild.py): on AFLW, yaw against
  AFLW's annotation, pose against the teacher label and landmark NME by |yaw| bin, beside
  both teachers on the same faces; on FER2013, how well eta separates emotions (5-NN).

Writes a JSON file of all numbers; docs/accuracy.md quotes it with the command.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.data import FIELDS, real_to_samples, with_defaults
from training.metrics import (
    corr,
    expression_metrics,
    landmark_nme,
    pose_metrics,
    predict_samples,
    readable_agreement,
    shape_metrics,
)
from workers import checkpoint, face_model
from workers.mirror import MirrorAveraged, for_inference
from workers.pose import angle_error, euler_from_matrix


def evaluate(ckpt: Path, renders: list[Path], real: list[Path], teacher_on_renders: bool,
             wild: Path | None = None, wild_emotion: Path | None = None, wild_plot: Path | None = None,
             one_view: bool = False) -> dict:
    """All numbers, keyed ``renders`` (the first render set), ``renders:NAME`` (the others),
    ``real:NAME`` and ``wild:NAME`` (in-the-wild held-out files that exist; the AFLW one
    also drawn to ``wild_plot``). The teacher is checked on the first render set. The
    network runs as its checkpoint asks (workers/mirror.py), or in one view with
    ``one_view``: as the service reads a live camera's crops."""
    network, meta = checkpoint.load(ckpt)
    model = network if one_view else for_inference(network, meta)
    size = int(meta["crop"]["size"])
    res: dict[str, Any] = {"checkpoint": str(ckpt), "face_model": meta.get("face_model"), "steps": meta.get("steps"),
                           "reading": "mirror_average" if isinstance(model, MirrorAveraged) else "one_view"}
    for i, path in enumerate(p for p in renders if p.exists()):
        d = np.load(path)
        data = with_defaults({k: d[k] for k in FIELDS if k in d.files})  # renders lack the masks
        P, L = predict_samples(model, data, size)
        res["renders" if i == 0 else f"renders:{path.name}"] = {
            "pose": pose_metrics(P, L), "expression": expression_metrics(P, L),
            "landmark_nme": landmark_nme(P, L),
            "shape": shape_metrics(P, L),
            "readable_blendshape_corr": readable_agreement(P, L), "file": str(path),
        }
        if teacher_on_renders and i == 0:
            res["teacher_on_renders"] = teacher_vs_truth(data, d["euler"])
    for p in real:
        if not p.exists():
            continue
        data = real_to_samples(p)
        P, L = predict_samples(model, data, size)
        res[f"real:{p.name}"] = {"pose_vs_teacher": pose_metrics(P, L),
                                 "expression_vs_teacher": expression_metrics(P, L),
                                 "readable_blendshape_corr": readable_agreement(P, L)}
    from training import evaluate_wild
    if wild and wild.is_file():
        res[f"wild:{wild.name}"], arrays = evaluate_wild.evaluate_aflw(model, size, wild)
        if wild_plot:
            from training.plots import plot_wild_yaw
            print(f"wrote {plot_wild_yaw(arrays, res[f'wild:{wild.name}'], wild_plot)}")
    if wild_emotion and wild_emotion.is_file():
        res[f"wild:{wild_emotion.name}"] = evaluate_wild.evaluate_emotion(model, size, wild_emotion)
    return res


def teacher_vs_truth(data: dict, euler_true: np.ndarray) -> dict:
    """Run the teacher on render crops and compare with the known truth."""
    from training.teacher import Teacher
    fm = face_model.load()
    t = Teacher(fm.blend_names, max_faces=1)
    errs, eta_t, eta_p = [], [], []
    for crop, blend, e in zip(data["crop"], data["blend"], euler_true):
        faces = t(crop)
        if not faces:
            continue
        errs.append(angle_error(np.array(euler_from_matrix(faces[0].rotation)), e))
        eta_p.append(fm.eta_from_blendshapes(faces[0].blend53)); eta_t.append(fm.eta_from_blendshapes(blend))
    t.close()
    e = np.array(errs)
    ep, et = np.array(eta_p), np.array(eta_t)
    return {"found": f"{len(e)}/{len(euler_true)}",
            "yaw_mae": float(e[:, 0].mean()), "pitch_mae": float(e[:, 1].mean()), "roll_mae": float(e[:, 2].mean()),
            "eta_rmse": float(np.sqrt(((ep - et) ** 2).mean())),
            "eta_corr_mean": float(np.nanmean(corr(ep, et)))}


def still_face_video(photo: Path, out: Path, frames: int = 90, fps: int = 30, seed: int = 0) -> Path:
    """A video of one still photo with per-frame sensor noise and a sub-pixel drift:
    any motion in the output is jitter."""
    import av
    import cv2
    from PIL import Image

    rng = np.random.default_rng(seed)
    img = np.asarray(Image.open(photo).convert("RGB"), np.float32)
    h, w = (img.shape[0] // 2) * 2, (img.shape[1] // 2) * 2
    with av.open(str(out), "w") as c:
        st = c.add_stream("libx264", rate=fps)
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            m = np.array([[1, 0, 0.3 * np.sin(i / 7)], [0, 1, 0.3 * np.cos(i / 9)]], np.float32)
            warped = cv2.warpAffine(img, m, (img.shape[1], img.shape[0]))[:h, :w]
            f = np.clip(warped + rng.normal(0, 4.0, warped.shape), 0, 255).astype(np.uint8)
            for pkt in st.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(pkt)
        for pkt in st.encode():
            c.mux(pkt)
    return out


def still_face_jitter(ckpt: Path, photo: Path, one_view: bool = False) -> dict:
    """Frame-to-frame pose change (degrees, RMS) on a still face, raw vs smoothed, through
    the real pipeline (`facestream analyze`; its crops read in one view with ``one_view``)."""
    import tempfile

    from streamer.config import load_config
    from streamer.data.dataset import read_records
    from streamer.pipeline.analyze import analyze

    with tempfile.TemporaryDirectory() as tmp:
        video = still_face_video(photo, Path(tmp) / "still.mp4")
        cfg = load_config(overrides={"parquet": {"out": str(Path(tmp) / "out")},
                                     "model": {"checkpoint": str(ckpt),
                                               "mirror_average": "never" if one_view else "files"}})
        analyze(video, cfg)
        records = read_records(Path(tmp) / "out")
    ids, counts = np.unique([r.track_id for r in records], return_counts=True)
    track = sorted((r for r in records if r.track_id == ids[counts.argmax()]), key=lambda r: r.frame_index)
    raw = np.stack([r.pose_raw[:3] for r in track])
    smooth = np.stack([r.pose[:3] for r in track])
    rms = lambda a: np.sqrt((np.diff(a, axis=0) ** 2).mean(0))
    r, s = rms(raw), rms(smooth)
    return {"frames": len(track), "raw_step_rms_deg": dict(zip(("yaw", "pitch", "roll"), r.round(3).tolist())),
            "smoothed_step_rms_deg": dict(zip(("yaw", "pitch", "roll"), s.round(3).tolist())),
            "reduction": float((r / np.maximum(s, 1e-9)).mean()), "photo": photo.name}


def store_in_checkpoint(ckpt: Path, res: dict) -> None:
    """Headline numbers into the checkpoint's JSON (atomically), so they travel with it."""
    js = Path(ckpt).with_suffix(".json")
    meta = json.loads(js.read_text())
    heads = {}
    for key, v in res.items():
        if not isinstance(v, dict):
            continue
        if key.startswith("wild:"):  # compact already: every number travels (not the per-face bits)
            heads[key] = {name: ({k: x for k, x in part.items() if k != "correct"} if isinstance(part, dict) else part)
                          for name, part in v.items()}
            continue
        pose = v.get("pose") or v.get("pose_vs_teacher")
        expr = v.get("expression") or v.get("expression_vs_teacher")
        if pose and expr:  # written together
            heads[key] = {"pose_mae_deg": {a: round(pose[f"{a}_mae"], 2) for a in ("yaw", "pitch", "roll")},
                          "eta_rmse": round(expr["eta_rmse"], 3), "n": pose["n"]}
    if "still_face_jitter" in res:
        heads["still_face_jitter"] = res["still_face_jitter"]
    meta["evaluation"] = {**meta.get("evaluation", {}), "facestream_evaluate": heads}
    checkpoint.write_meta(js, meta)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=checkpoint.default_path())
    ap.add_argument("--renders", type=Path, nargs="*",
                    default=[Path("data/synth/val-0000.npz"), Path("data/synth/val-actions-0000.npz")],
                    help="held-out render shards: sparse expressions, then facial actions")
    ap.add_argument("--real", type=Path, nargs="*",
                    default=[Path("data/labels/real_test.npz"), Path("data/labels/real_test_photos.npz"),
                             Path("data/labels/clips2_test.npz")])
    ap.add_argument("--teacher-on-renders", action="store_true")
    ap.add_argument("--jitter-photo", type=Path, default=Path("../shared/data/real/obama-720p.jpg"),
                    help="still photo for the raw-vs-smoothed jitter measurement ('' to skip)")
    ap.add_argument("--out", type=Path, default=Path("docs/accuracy.json"))
    ap.add_argument("--plot", nargs=2, metavar=("SOURCE", "PNG"), default=None,
                    help="plot one held-out clip of the first --real file, e.g. lp_d11.mp4 docs/img/lp_d11.png")
    ap.add_argument("--wild", type=Path, default=Path("data/labels/aflw_heldout.npz"),
                    help="in-the-wild held-out AFLW labels (training/wild_labels.py; '' to skip)")
    ap.add_argument("--wild-emotion", type=Path, default=Path("data/labels/fer_heldout.npz"),
                    help="held-out FER2013 labels for emotion 5-NN on eta ('' to skip)")
    ap.add_argument("--wild-plot", type=Path, default=None,
                    help="yaw plot of the --wild faces (default: img/wild_yaw.png beside --out; '' to skip)")
    ap.add_argument("--into-checkpoint", action="store_true",
                    help="also store the headline numbers in the checkpoint's JSON metadata")
    ap.add_argument("--one-view", action="store_true",
                    help="run the network on each crop alone, as the service reads a live camera's crops, "
                         "not mirror-averaged as the checkpoint asks (workers/mirror.py)")
    args = ap.parse_args(argv)
    if args.one_view and args.into_checkpoint:
        ap.error("--one-view numbers are not the checkpoint's own; leave out --into-checkpoint")
    torch.set_num_threads(2)
    wild_plot = args.out.parent / "img" / "wild_yaw.png" if args.wild_plot is None else args.wild_plot
    res = evaluate(args.checkpoint, args.renders, args.real, args.teacher_on_renders, args.wild,
                   args.wild_emotion, wild_plot if str(wild_plot) not in ("", ".") else None, args.one_view)
    if args.jitter_photo.is_file():
        res["still_face_jitter"] = still_face_jitter(args.checkpoint, args.jitter_photo, args.one_view)
    if args.plot:
        from training.plots import plot_clip
        model, meta = checkpoint.load(args.checkpoint)
        drawn = plot_clip(model if args.one_view else for_inference(model, meta), int(meta["crop"]["size"]),
                          args.real[0], args.plot[0], Path(args.plot[1]))
        print(f"wrote {drawn}")
    if args.into_checkpoint:
        store_in_checkpoint(args.checkpoint, res)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1))
    brief = {k: (v.get("pose") or v.get("pose_vs_teacher")) for k, v in res.items()
             if isinstance(v, dict) and k not in ("face_model",) and not k.startswith("wild:")}
    print(json.dumps(brief, indent=1))
    from training.evaluate_wild import emotion_markdown, markdown
    for k, v in res.items():
        if k.startswith("wild:"):
            print(f"\n{k}\n" + (markdown(v) if "yaw_bins" in v else emotion_markdown(v)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
