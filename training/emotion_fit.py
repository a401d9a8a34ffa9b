"""Fitting the emotion classifier (workers/emotion.py): class-balanced, then calibrated.

FER2013's classes are far from even (disgust is 1.5% of the faces, happy 25%), and a plain
cross-entropy fit learns to never say disgust. Each face is weighted by the inverse of
its class's share, so every class weighs the same in the loss: the fit ranks classes as
if they were equally common.

Weighting moves probabilities away from what they mean (a weighted fit is over-confident
on rare classes), so the probabilities are calibrated afterwards by one temperature fitted
on faces the classifier did not see: a calibration part of the training file, split off
by image name hash (never the held-out file). Temperature scaling keeps every face's
ranking, so it changes no label, only how far to trust it (what the abstention threshold
reads).

Full-batch Adam on tens of thousands of short vectors takes seconds on a CPU; the seed
fixes the initial weights, so the same features give the same classifier.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from workers.emotion import CLASSES, Classifier


def calibration_split(names: np.ndarray, frac: float = 0.15, seed: int = 13) -> np.ndarray:
    """True for the faces set aside for calibration, chosen by a hash of the image name
    (stable whatever order or subset the faces come in)."""
    def u(n: str) -> float:
        return int(hashlib.sha256(f"{seed}:calib:{n}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return np.array([u(str(n)) < frac for n in names], bool)


def class_index(emotion: np.ndarray) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(CLASSES)}
    return np.array([lookup[str(e)] for e in emotion], np.int64)


def balanced_weights(y: np.ndarray) -> np.ndarray:
    """Per-class weight n / (k * count): each class contributes the same total weight."""
    counts = np.bincount(y, minlength=len(CLASSES)).astype(np.float64)
    return np.where(counts > 0, len(y) / (len(CLASSES) * np.maximum(counts, 1)), 0.0)


def fit(X: np.ndarray, y: np.ndarray, hidden: tuple[int, ...] = (), weight_decay: float = 1e-4,
        steps: int = 1500, lr: float = 0.02, seed: int = 0) -> Classifier:
    """Fit on features X (N, D) and class indices y; temperature 1 (see :func:`calibrate`)."""
    X = np.asarray(X, np.float64)
    mean, std = X.mean(0), X.std(0)
    std = np.where(std > 1e-8, std, 1.0)
    torch.manual_seed(seed)
    dims = (X.shape[1], *hidden, len(CLASSES))
    net = torch.nn.Sequential(*[m for i in range(len(dims) - 1) for m in
                                ([torch.nn.Linear(dims[i], dims[i + 1])] +
                                 ([torch.nn.ReLU()] if i < len(dims) - 2 else []))]).double()
    xt = torch.from_numpy((X - mean) / std)
    yt = torch.from_numpy(np.asarray(y, np.int64))
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.from_numpy(balanced_weights(yt.numpy())))
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(net(xt), yt)
        loss.backward()
        opt.step()
        sched.step()
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    layers = [(m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()) for m in linears]
    return Classifier(mean=mean, std=std, layers=layers)


def nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    z = z - z.max(1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(len(y)), y]))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the (unweighted) negative log-likelihood of labels ``y``
    under ``softmax(logits / T)``, on faces the logits' model was not fitted on."""
    from scipy.optimize import minimize_scalar

    res = minimize_scalar(lambda lt: nll(logits, y, float(np.exp(lt))), bounds=(-3.0, 3.0), method="bounded")
    return float(np.exp(res.x))


def calibrate(clf: Classifier, X: np.ndarray, y: np.ndarray) -> float:
    """Set and return the classifier's temperature (:func:`fit_temperature` on faces ``X``)."""
    clf.temperature = fit_temperature(clf.logits(X), y)
    return clf.temperature
