"""What each emotion reader costs a regressor batch, as ratios measured in one run.

    .venv/bin/python bench/emotion_cost.py [--checkpoint PATH] [--batches 1,8,32] [--threads 2] [--rounds 15]

Times, on the same random crops (the cost does not depend on what they show), the
replica's whole call (``Regressor.__call__``: network, decoding, emotion, presence, light
and sharpness) with the emotion branch (``model.emotion: branch``) and with the classifier
over eta (``eta``), round-robin ``--rounds`` times, in one view (a camera's crops) and
mirror-averaged (a file's), and prints crops/s and the branch's cost as a ratio.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import machine
from workers import checkpoint
from workers.emotion_labels import EmotionSource
from workers.regressor import Regressor


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=str(checkpoint.default_path()))
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    readers = {src: Regressor.load(a.checkpoint, "cpu", src) for src in EmotionSource}
    if "emotion" not in readers[EmotionSource.BRANCH].model(torch.zeros(1, 3, 120, 120)):
        raise SystemExit(f"{a.checkpoint} has no emotion branch beside it: nothing to compare")
    print(f"{machine()['cpu']}; {a.threads} threads; best of {a.rounds} rounds")
    print("| batch | reading | eta: crops/s | branch: crops/s | branch / eta time |")
    print("|---|---|---|---|---|")
    for n in (int(b) for b in a.batches.split(",")):
        x = torch.randn(n, 3, 120, 120)
        reps = max(1, 32 // n)           # the same number of crops per timing at every batch size
        for reading, mirror in (("one view", np.zeros(n, bool)), ("mirror-averaged", np.ones(n, bool))):
            times: dict[EmotionSource, list[float]] = {src: [] for src in readers}
            for _ in range(a.rounds):
                for src, reg in readers.items():
                    t = time.perf_counter()
                    for _ in range(reps):
                        reg(x, mirror)
                    times[src].append(time.perf_counter() - t)
            best = {src: min(v) for src, v in times.items()}
            eta, branch = (best[EmotionSource.ETA], best[EmotionSource.BRANCH])
            print(f"| {n} | {reading} | {reps * n / eta:,.0f} | {reps * n / branch:,.0f} | {branch / eta:.2f} |")


if __name__ == "__main__":
    main()
