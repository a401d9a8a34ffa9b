"""What the emotion classifier adds to a regressor batch, as a ratio measured in one run.

    .venv/bin/python bench/emotion_cost.py [--checkpoint PATH] [--batch 32] [--rounds 20]

Times, on the same batch of crops, the network plus decoding (what a replica ran before
the classifier read eta) and the emotion classifier on the decoded eta (what it runs since), round-robin
``--rounds`` times on one CPU thread, and prints both medians and the classifier's share
of a batch. Random crops: the cost does not depend on what they show.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from workers import checkpoint, emotion
from workers.regressor import Regressor, decode


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=str(checkpoint.default_path()))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=20)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    reg = Regressor.load(a.checkpoint, "cpu")
    clf = emotion.load(a.checkpoint)
    x = torch.randn(a.batch, 3, reg.size, reg.size)
    net, cls = [], []
    with torch.inference_mode():
        for _ in range(a.rounds + 2):
            t = time.perf_counter()
            pred = decode(reg.model(x), reg.size)
            t1 = time.perf_counter()
            clf.probs(pred.expression)
            t2 = time.perf_counter()
            net.append(t1 - t)
            cls.append(t2 - t1)
    n, c = np.median(net[2:]), np.median(cls[2:])
    print(f"batch {a.batch}: network + decode {n * 1e3:.1f} ms, emotion classifier {c * 1e3:.3f} ms "
          f"({c / n:.2%} of the batch)")


if __name__ == "__main__":
    main()
