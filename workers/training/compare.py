"""Two sets of weights side by side: the headline numbers of ``facestream evaluate``.

    python -m workers.training.compare BEFORE.json[,MORE.json] AFTER.json[,MORE.json]

Each side is one or more ``facestream evaluate`` JSON files (later files add sections,
e.g. a held-out set evaluated on its own). Prints, for every headline number both sides
have, the two values and the change, with the 5-NN accuracy's standard error beside it:
whether a trial replaces the shipped weights is decided by rules written before it ran
(docs/training.md), and this is how those rules are read, the same way every time.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Iterator

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


def table(before: dict, after: dict) -> str:
    lines = ["| number | before | after | change |", "|---|---|---|---|"]
    for name, a, b in rows(before, after):
        lines.append(f"| {name} | {a:.4f} | {b:.4f} | {b - a:+.4f} |")
    se = [_get(side, (*_FER, "accuracy_se")) for side in (before, after)]
    if all(isinstance(s, float) for s in se):
        lines.append(f"\nFER 5-NN standard error: {se[0]:.4f} before, {se[1]:.4f} after")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before", help="evaluate JSON file(s), comma-separated")
    ap.add_argument("after", help="evaluate JSON file(s), comma-separated")
    args = ap.parse_args(argv)
    print(table(load(args.before), load(args.after)))


if __name__ == "__main__":
    main()
