"""Two sets of weights side by side: the headline numbers of ``facestream evaluate``.

    python -m training.compare BEFORE.json[,MORE.json] AFTER.json[,MORE.json]

Each side is one or more ``facestream evaluate`` JSON files (later files add sections,
e.g. a held-out set evaluated on its own). Prints, for every headline number both sides
have, the two values and the change, with the 5-NN accuracy's standard error beside it
and, where both files say which faces were right, the change counted face by face:
whether a trial replaces the shipped weights is decided by rules written before it ran
(docs/training.md), and this is how those rules are read, the same way every time.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from training.evaluate_wild import unpack_bits

_AFLW = ("wild:aflw_heldout.npz", "yaw_bins")
_FER = ("wild:fer_heldout.npz", "model_eta")


def load(paths: str) -> dict[str, Any]:
    """One side: comma-separated evaluate JSON files, merged by section."""
    merged: dict[str, Any] = {}
    for path in paths.split(","):
        merged.update(json.loads(Path(path).read_text()))
    return merged


def _get(res: dict, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(res, dict) or key not in res:
            return None
        res = res[key]
    return res


def headline_paths(res: dict) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(name, path in the JSON) of every headline number ``res`` can hold."""
    for b in ("all", "60-90"):
        model = (*_AFLW, b, "model")
        yield f"AFLW {b}: yaw vs AFLW (deg)", (*model, "yaw_mae_vs_aflw")
        yield f"AFLW {b}: pose vs label, mean (deg)", (*model, "pose_mae_vs_label", "mean")
        yield f"AFLW {b}: NME 8 pt (%)", (*model, "nme_common8")
    yield "FER: 5-NN on eta", (*_FER, "accuracy")
    for section in sorted(k for k in res if k.startswith("real:")):
        name = section.removeprefix("real:").removesuffix(".npz")
        yield f"{name}: pose vs teacher, mean (deg)", (section, "pose_vs_teacher", "mean_mae")
        yield f"{name}: eta RMSE vs teacher", (section, "expression_vs_teacher", "eta_rmse")
        for shape in ("jawOpen", "smile", "blink", "browUp"):
            yield f"{name}: {shape} r", (section, "readable_blendshape_corr", shape)


def rows(before: dict, after: dict) -> list[tuple[str, float, float]]:
    """(name, before, after) for the headline numbers both sides have."""
    seen = dict(headline_paths(before)) | dict(headline_paths(after))
    out = []
    for name, path in seen.items():
        a, b = _get(before, path), _get(after, path)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            out.append((name, float(a), float(b)))
    return out


def paired(before: dict, after: dict) -> dict | None:
    """The FER 5-NN change face by face, when both sides carry which faces were right
    (evaluate_wild.separability) for the same number of faces: the change, its standard
    error over faces (the two readings share faces and most errors, so this is much
    smaller than either accuracy's own), and the faces only one side got right."""
    sides = [_get(side, _FER) for side in (before, after)]
    if not all(isinstance(s, dict) and "correct" in s for s in sides) or sides[0]["n"] != sides[1]["n"]:
        return None
    n = int(sides[0]["n"])
    a, b = (unpack_bits(s["correct"], n).astype(np.float64) for s in sides)
    d = b - a
    return {"n": n, "change": float(d.mean()), "se": float(d.std(ddof=1) / np.sqrt(n)),
            "only_before": int(((a == 1) & (b == 0)).sum()), "only_after": int(((a == 0) & (b == 1)).sum())}


def table(before: dict, after: dict) -> str:
    lines = ["| number | before | after | change |", "|---|---|---|---|"]
    for name, a, b in rows(before, after):
        lines.append(f"| {name} | {a:.4f} | {b:.4f} | {b - a:+.4f} |")
    se = [_get(side, (*_FER, "accuracy_se")) for side in (before, after)]
    if all(isinstance(s, float) for s in se):
        lines.append(f"\nFER 5-NN standard error: {se[0]:.4f} before, {se[1]:.4f} after")
    p = paired(before, after)
    if p is not None:
        lines.append(f"FER 5-NN change face by face: {p['change']:+.4f} ± {p['se']:.4f} over {p['n']} faces "
                     f"(right only before: {p['only_before']}, only after: {p['only_after']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before", help="evaluate JSON file(s), comma-separated")
    ap.add_argument("after", help="evaluate JSON file(s), comma-separated")
    args = ap.parse_args(argv)
    print(table(load(args.before), load(args.after)))


if __name__ == "__main__":
    main()
