"""Fit, evaluate and ship the emotion classifier of a network checkpoint.

    python -m training.emotion --checkpoint workers/weights/facestream-mb05

runs the network over the FER2013 label files (emotion_features.py, cached), fits the
classifier on the training file's eta (emotion_fit.py: class-balanced, temperature on a
calibration part of the training file), evaluates it on the held-out file (never trained
or calibrated on; emotion_eval.py), and writes it beside the checkpoint as
``NAME.emotion.json`` (workers/emotion.py) with those numbers inside. ``make weights``
runs it right after exporting the network, so the two are always fitted together.

For comparison the same recipe is fitted on other features of the same faces: MediaPipe's
blendshapes (the faces it found) with eta on exactly those faces beside it, the same
blendshapes projected onto the 29-D expression basis (what eta could carry if the
network matched its teacher), and the network trunk's pooled features (what a classifier reading deep features
instead of eta would reach). Those are evaluated, not shipped. The numbers go to ``--out`` (JSON) and
the confusion matrices to ``--confusion`` (PNG); docs/accuracy.md quotes them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from training.emotion_eval import abstention_curve, markdown, metrics, plot_confusion
from training.emotion_features import features
from training.emotion_fit import calibrate, calibration_split, class_index, fit
from workers import checkpoint, face_model
from workers.checkpoint import weights_sha256
from workers.emotion import CLASSES, Classifier, path_for
from workers.mirror import asks_for_it

LABELS = Path("data/labels")
HIDDEN_CHOICES = ((), (64,))   # logistic regression, one small hidden layer
SEED = 0


def fit_calibrated(X: np.ndarray, y: np.ndarray, calib: np.ndarray,
                   hidden_choices: tuple[tuple[int, ...], ...] = HIDDEN_CHOICES) -> tuple[Classifier, list[dict]]:
    """Fit each architecture on the fitting part, keep the one with the best macro-F1 on
    the calibration part, set its temperature there. Returns (classifier, choice log)."""
    from training.evaluate_wild import macro_f1

    best, log = None, []
    for hidden in hidden_choices:
        clf = fit(X[~calib], y[~calib], hidden=hidden, seed=SEED)
        f1, _ = macro_f1(np.asarray(CLASSES)[y[calib]], np.asarray(CLASSES)[clf.logits(X[calib]).argmax(1)])
        log.append({"hidden": list(hidden), "calibration_macro_f1": f1})
        if best is None or f1 > best[0]:
            best = (f1, hidden, clf)
    assert best is not None, "no hidden layer choice to try"
    _, hidden, clf = best
    calibrate(clf, X[calib], y[calib])
    clf.meta["hidden"] = list(hidden)
    return clf, log


def run(ckpt: Path, train: Path, heldout: Path, compare: bool = True) -> tuple[Classifier, dict]:
    """(shipped classifier, results) for one checkpoint."""
    meta = checkpoint.load_meta(ckpt)
    tr, ho = features(ckpt, train), features(ckpt, heldout)
    ytr, yho = class_index(tr["emotion"]), class_index(ho["emotion"])
    calib = calibration_split(tr["name"])
    one_view = None
    if asks_for_it(meta):
        # the service reads files' crops mirror-averaged and a camera's in one view: one
        # classifier for both, fitted on both readings of every training face (fitted on
        # the averaged eta alone it lost 0.04 of accuracy on one view, docs/accuracy.md)
        one_view = features(ckpt, train, one_view=True), features(ckpt, heldout, one_view=True)
        clf, choices = fit_calibrated(np.concatenate([tr["eta"], one_view[0]["eta"]]), np.concatenate([ytr, ytr]),
                                      np.concatenate([calib, calib]))
    else:
        clf, choices = fit_calibrated(tr["eta"], ytr, calib)
    res = {"checkpoint": str(ckpt), "train": str(train), "heldout": str(heldout),
           "train_faces": int((~calib).sum()), "calibration_faces": int(calib.sum()),
           "counts_train": {c: int(np.sum(ytr == i)) for i, c in enumerate(CLASSES)},
           "architecture_choice": choices, "temperature": clf.temperature,
           "yaw": "the network's yaw for each face (the label files' faces are mostly near-frontal)"}
    P = clf.probs(ho["eta"])
    rows = {"eta (shipped)": metrics(P, yho, ho["yaw"])}
    if one_view is not None:
        rows["eta, one view (live cameras)"] = metrics(clf.probs(one_view[1]["eta"]), yho, one_view[1]["yaw"])
    res["abstention"] = abstention_curve(P, yho)
    if compare:
        mt, mh = tr["blend_mask"], ho["blend_mask"]
        # MediaPipe's blendshapes projected onto the 29-D basis: what eta could carry if the
        # network matched its teacher exactly (the basis' loss, apart from the network's)
        fm = face_model.load()
        tr["teacher_eta"] = fm.eta_from_blendshapes(tr["blend"])
        ho["teacher_eta"] = fm.eta_from_blendshapes(ho["blend"])
        for name, key, tm, hm in (("eta, MediaPipe's faces", "eta", mt, mh),
                                  ("MediaPipe blendshapes", "blend", mt, mh),
                                  ("MediaPipe blendshapes as eta (29-D)", "teacher_eta", mt, mh),
                                  ("trunk pooled features", "pooled", None, None)):
            tm = np.ones(len(ytr), bool) if tm is None else tm
            hm = np.ones(len(yho), bool) if hm is None else hm
            if name.startswith("eta,"):
                rows[name] = metrics(P[hm], yho[hm], ho["yaw"][hm])
                continue
            c, _ = fit_calibrated(tr[key][tm], ytr[tm], calib[tm])
            rows[name] = metrics(c.probs(ho[key][hm]), yho[hm], ho["yaw"][hm])
            rows[name]["hidden"] = c.meta["hidden"]
    res["heldout"] = rows
    clf.meta.update({
        "face_model": face_model.load().meta(),
        "network": {"name": meta.get("name", ckpt.name), "weights_sha256": weights_sha256(ckpt)},
        "training": {"command": "python -m " + " ".join([__spec__.name if __spec__ else "training.emotion",
                                                          *sys.argv[1:]]),
                     "data": str(train), "faces": res["train_faces"],
                     "eta": "mirror-averaged and one view" if one_view is not None else "one view",
                     "calibration_faces": res["calibration_faces"],
                     "class_weights": "balanced (n / (7 * count))", "seed": SEED, "choices": choices},
        "evaluation": {"data": str(heldout), **{k: v for k, v in rows["eta (shipped)"].items() if k != "confusion"},
                       "abstention": res["abstention"]},
    })
    return clf, res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m training.emotion", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, default=checkpoint.default_path().with_suffix(""))
    ap.add_argument("--train", type=Path, default=LABELS / "fer_train.npz")
    ap.add_argument("--heldout", type=Path, default=LABELS / "fer_heldout.npz")
    ap.add_argument("--out", type=Path, help="write all numbers here (JSON)")
    ap.add_argument("--confusion", type=Path, help="write the confusion matrices here (PNG)")
    ap.add_argument("--no-compare", action="store_true", help="skip the blendshape and pooled-feature baselines")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (running the network)")
    a = ap.parse_args(argv)

    import torch
    torch.set_num_threads(a.threads)
    clf, res = run(a.checkpoint, a.train, a.heldout, compare=not a.no_compare)
    dest = clf.save(path_for(a.checkpoint))
    print(markdown(res["heldout"]))
    print(f"temperature {clf.temperature:.3f}, hidden {clf.meta['hidden']}; wrote {dest}")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=2))
    if a.confusion:
        plot_confusion({k: v for k, v in res["heldout"].items()
                        if k not in ("eta, MediaPipe's faces", "eta, one view (live cameras)")}, a.confusion)


if __name__ == "__main__":
    main()
