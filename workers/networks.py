"""Regression networks: a trunk and one multi-task head.

ExpNet regressed expression with a ResNet-101; that architecture is here (``resnet101``)
for GPU use. ``resnet18h`` (a half-width ResNet-18 at 128 px, about 0.15 GFLOPs a face)
was the first CPU default; it starts from random weights and learned the few faces it was
shown rather than faces. ``mb05`` is 3DDFA_V2's MobileNetV1-0.5 trunk (workers/mobilenet.py)
at 120 px, about 0.05 GFLOPs a face, and ``init_from_3ddfa`` starts it from weights trained
on 300W-LP for 3DMM regression: a trunk that already knows face geometry across pose.
torchvision is deliberately not used (it does not import next to the CPU torch wheel).

Head outputs (all per face):
  expression (29)  eta of the face model
  rot6d (6)        first two columns of R (continuous; Zhou et al. 2019)
  trans (3)        u, v of the face centre in crop coordinates ([-1, 1]) and log scale
  shape (99)       identity alpha; read from the embedding, from the trunk's features pooled
                   to 2×2 cells (``ShapeInput.TRUNK_2X2``), where the layout of the face that
                   identity lives in is not yet averaged away, or (``ShapeInput.BRANCH``, the
                   shipped weights) from an identity branch: its own copy of a few trunk
                   blocks, trained for who a face is (docs/accuracy.md, "Identity shape";
                   training/identity_branch.py)
  landmarks (136)  68 points in crop coordinates, an auxiliary task (the seed's
                   multi-task idea: geometry supervision regularises the trunk)
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import cast

import torch
from torch import nn

from workers.mobilenet import BLOCKS, MobileNetV1, load_3ddfa

HEADS = {"expression": 29, "rot6d": 6, "trans": 3, "shape": 99, "landmarks": 136}


class ShapeInput(StrEnum):
    """What the identity-shape head reads (a checkpoint's ``shape_input``)."""

    EMBEDDING = "embedding"   # the 512-D embedding every head reads (as trained end to end)
    TRUNK_2X2 = "trunk_2x2"   # the trunk's last features average-pooled to 2×2 cells, flattened
    BRANCH = "branch"         # an identity branch's features (ShapeBranch) pooled to 2×2 cells


@dataclass(frozen=True)
class ShapeBranch:
    """Where an identity branch leaves the trunk and how many blocks it copies.

    The trunk is trained for pose and expression, which must not depend on who a face is;
    a linear read-out of its last features separates people only so far (docs/accuracy.md).
    A branch of its own blocks, trained for identity while the trunk stays frozen, learns
    who a face is without moving any other output (a checkpoint's ``shape_branch``)."""

    split: int = 6   # the trunk blocks before this index are shared
    depth: int = 2   # trunk blocks copied after it

    def to_meta(self) -> dict:
        return {"split": self.split, "depth": self.depth}

    @classmethod
    def from_meta(cls, meta: dict) -> "ShapeBranch":
        return cls(split=int(meta["split"]), depth=int(meta["depth"]))


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module | None:
    """1×1 projection for a residual whose shape changes; None where identity fits."""
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.down is None else self.down(x)
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + idt)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.down = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.down is None else self.down(x)
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        return torch.relu(self.bn3(self.conv3(y)) + idt)


ARCHS = {
    # name: (block, blocks per stage, stage widths); "mb05" is the MobileNet trunk below
    "resnet18h": (BasicBlock, (2, 2, 2, 2), (32, 64, 128, 256)),
    "resnet18": (BasicBlock, (2, 2, 2, 2), (64, 128, 256, 512)),
    "resnet101": (Bottleneck, (3, 4, 23, 3), (64, 128, 256, 512)),
    "tiny": (BasicBlock, (1, 1, 1, 1), (8, 16, 16, 32)),  # for plumbing tests only
    "mb05": None,
}
# input size each architecture was designed for (a checkpoint's crop rule says what it uses)
INPUT_SIZE = {"mb05": 120, "resnet101": 224}


def _mobilenet_trunk() -> tuple[nn.Sequential, nn.Sequential, int]:
    """(stem, trunk, features) of MobileNetV1-0.5, laid out as ``init_from_3ddfa`` maps."""
    net = MobileNetV1()
    stem = nn.Sequential(net.conv1, net.bn1, nn.ReLU(inplace=True))
    trunk = nn.Sequential(*(getattr(net, name) for name, *_ in BLOCKS))
    return stem, trunk, net.features


class FaceRegressor(nn.Module):
    """A trunk (ResNet or MobileNet) + one linear head per task, fed by global average pooling."""

    def __init__(self, arch: str = "resnet18h", shape_input: ShapeInput = ShapeInput.EMBEDDING,
                 shape_branch: ShapeBranch | None = None):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")
        self.arch = arch
        self.shape_input = ShapeInput(shape_input)
        if (self.shape_input is ShapeInput.BRANCH) != (shape_branch is not None):
            raise ValueError("an identity branch (shape_branch) goes with ShapeInput.BRANCH, and only with it")
        self.branch_spec = shape_branch
        self.emotion_branch: nn.Module | None = None
        self.stem: nn.Sequential
        self.trunk: nn.Sequential
        spec = ARCHS[arch]
        if spec is None:  # mb05
            self.stem, self.trunk, self.features = _mobilenet_trunk()
            self._init_heads(self.features)
            return
        block, depths, widths = spec
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 7, 2, 3, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        stages, cin = [], widths[0]
        for i, (n, w) in enumerate(zip(depths, widths)):
            for j in range(n):
                b = block(cin, w, stride=2 if (j == 0 and i > 0) else 1)
                stages.append(b)
                cin = w * block.expansion
        self.trunk = nn.Sequential(*stages)
        self.features = cin
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for blk in self.trunk:  # zero-init the last BN of each block: starts as identity
            last = blk.bn3 if isinstance(blk, Bottleneck) else cast(BasicBlock, blk).bn2
            nn.init.zeros_(last.weight)
        self._init_heads(cin)

    def _init_heads(self, features: int) -> None:
        self.embed = nn.Sequential(nn.Linear(features, 512), nn.ReLU(inplace=True))
        if self.shape_input is ShapeInput.TRUNK_2X2:
            self.shape_head = nn.Linear(4 * features, HEADS["shape"])
        if self.branch_spec is not None:
            split, depth = self.branch_spec.split, self.branch_spec.depth
            if not (0 < split and depth > 0 and split + depth <= len(self.trunk)):
                raise ValueError(f"an identity branch must copy blocks inside the trunk's {len(self.trunk)}, "
                                 f"got split {split}, depth {depth}")
            self.shape_branch = copy.deepcopy(self.trunk[split:split + depth])
            self.shape_head = nn.Linear(4 * out_channels(self.shape_branch), HEADS["shape"])
        self.heads = nn.ModuleDict({k: nn.Linear(512, n) for k, n in HEADS.items()
                                    if k != "shape" or self.shape_input is ShapeInput.EMBEDDING})
        rot6d = cast(nn.Linear, self.heads["rot6d"])
        with torch.no_grad():  # start at the frontal pose, not a random rotation
            rot6d.weight.mul_(0.01)
            rot6d.bias.copy_(torch.tensor([1.0, 0, 0, 0, 1.0, 0]))

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk's globally pooled features, (N, features): what every head reads."""
        return _pool(self.trunk(self.stem(x)), 1)

    def shared(self, x: torch.Tensor, split: int) -> torch.Tensor:
        """The trunk's feature maps before block ``split``: what a branch leaving there reads."""
        return self.trunk[:split](self.stem(x))

    def branch_cells(self, maps: torch.Tensor) -> torch.Tensor:
        """The identity branch's features pooled to 2×2 cells, (N, 4·C), from ``shared`` maps."""
        return _pool(self.shape_branch(maps), 2)

    def attach_emotion_branch(self, branch: nn.Module | None) -> None:
        """Run ``branch`` (workers.emotion_branch.EmotionBranch) on the trunk's features
        after its ``split`` blocks: ``forward`` then also gives ``emotion`` logits. The
        other outputs do not change (the branch only reads)."""
        self.emotion_branch = branch

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each head's output, and the ``embedding`` they all read (for probes such as
        workers.presence that are fitted on a trained network); ``emotion`` logits too
        when an emotion branch is attached."""
        maps = self.stem(x)
        emotion = shape = None
        for i, block in enumerate(self.trunk):
            if self.emotion_branch is not None and i == self.emotion_branch.split:
                emotion = self.emotion_branch(maps)
            if self.branch_spec is not None and i == self.branch_spec.split:
                shape = self.shape_head(self.branch_cells(maps))
            maps = block(maps)
        f = self.embed(_pool(maps, 1))
        out = {"embedding": f, **{k: h(f) for k, h in self.heads.items()}}
        if emotion is not None:
            out["emotion"] = emotion
        if self.shape_input is ShapeInput.TRUNK_2X2:
            out["shape"] = self.shape_head(_pool(maps, 2))
        if shape is not None:
            out["shape"] = shape
        return out


def out_channels(blocks: nn.Module) -> int:
    """Channels a run of trunk blocks puts out: its last batch norm's width."""
    return [m for m in blocks.modules() if isinstance(m, nn.BatchNorm2d)][-1].num_features


def _pool(maps: torch.Tensor, cells: int) -> torch.Tensor:
    """Feature maps averaged over ``cells`` × ``cells`` cells and flattened, (N, C·cells²)."""
    return torch.flatten(nn.functional.adaptive_avg_pool2d(maps, cells), 1)


def init_from_3ddfa(model: FaceRegressor, source: Path | str | None = None) -> FaceRegressor:
    """Copy 3DDFA_V2's trained MobileNet trunk into an ``mb05`` FaceRegressor (heads stay
    fresh). 3DDFA_V2 fed BGR; facestream crops are RGB, so the first convolution's input
    channels are reversed once here instead of converting every crop."""
    if model.arch != "mb05":
        raise ValueError(f"3DDFA_V2's trunk fits the mb05 architecture, not {model.arch}")
    src = load_3ddfa(source)
    model.stem[0].load_state_dict(src.conv1.state_dict())
    model.stem[1].load_state_dict(src.bn1.state_dict())
    conv1 = cast(nn.Conv2d, model.stem[0])
    with torch.no_grad():
        conv1.weight.copy_(conv1.weight.flip(1))
    for dst, (name, *_) in zip(model.trunk, BLOCKS):
        dst.load_state_dict(getattr(src, name).state_dict())
    return model
