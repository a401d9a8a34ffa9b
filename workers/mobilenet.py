"""MobileNetV1 (width 0.5) as 3DDFA_V2 trained it: a face-pretrained trunk and a teacher.

3DDFA_V2 (Guo et al., ECCV 2020, MIT) trained this network on 300W-LP to regress 62 3DMM
parameters (a 3x4 camera, 40 shape and 10 expression coefficients) and, as an auxiliary
task, 68 2-D landmarks, from a 120x120 face crop. Two uses here:

* a second teacher for training labels (training/teacher_3ddfa.py): it gives a
  pose for every face it is given, full profiles included, where MediaPipe finds nothing;
* a trunk that already knows face geometry, to start the fast CPU backbone from
  (``pooled`` is what a FaceRegressor head would read), instead of random weights.

The architecture is written here from the description in
``../shared/data/teachers/3ddfa_v2/README.md``; module names match the tensors of
``mb05_120x120.safetensors`` so the weights load strictly. Only torch is imported: this
file is on the inference side. Nothing is downloaded; the weights are read from disk.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data" / "teachers" / "3ddfa_v2"
WEIGHTS_FILE = "mb05_120x120.safetensors"
INPUT_SIZE = 120
N_PARAM = 62
N_LANDMARKS = 68

# (name, in channels, out channels, stride) of the 13 depthwise-separable blocks, width 0.5
BLOCKS = (
    ("dw2_1", 16, 32, 1), ("dw2_2", 32, 64, 2),
    ("dw3_1", 64, 64, 1), ("dw3_2", 64, 128, 2),
    ("dw4_1", 128, 128, 1), ("dw4_2", 128, 256, 2),
    ("dw5_1", 256, 256, 1), ("dw5_2", 256, 256, 1), ("dw5_3", 256, 256, 1),
    ("dw5_4", 256, 256, 1), ("dw5_5", 256, 256, 1), ("dw5_6", 256, 512, 2),
    ("dw6", 512, 512, 1),
)
FEATURES = BLOCKS[-1][2]


class DepthWiseBlock(nn.Module):
    """3x3 depthwise conv -> BN -> ReLU -> 1x1 pointwise conv -> BN -> ReLU."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv_dw = nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False)
        self.bn_dw = nn.BatchNorm2d(cin)
        self.conv_sep = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn_sep = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn_dw(self.conv_dw(x)))
        return torch.relu(self.bn_sep(self.conv_sep(x)))


class MobileNetV1(nn.Module):
    """3DDFA_V2's MobileNetV1-0.5: trunk (conv1 + 13 blocks), pooled 512-D features, and
    the two linear heads it was trained with (``fc_param``: 62 normalised 3DMM parameters,
    ``fc_lm``: 68 2-D landmarks). The heads are separate modules so a trunk user can drop
    them; ``pooled`` never touches them."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        for name, cin, cout, stride in BLOCKS:
            self.add_module(name, DepthWiseBlock(cin, cout, stride))
        self.features = FEATURES
        self.fc_param = nn.Linear(FEATURES, N_PARAM)
        self.fc_lm = nn.Linear(FEATURES, 2 * N_LANDMARKS)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, 512, H/32, W/32) feature map."""
        x = torch.relu(self.bn1(self.conv1(x)))
        for name, *_ in BLOCKS:
            x = getattr(self, name)(x)
        return x

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """The globally average-pooled trunk features, (N, 512): what both heads read, and
        what a FaceRegressor head reads when this trunk is its backbone."""
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.trunk(x), 1), 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(normalised 62-D parameters, 136 landmark outputs), as 3DDFA_V2 trained them."""
        f = self.pooled(x)
        return self.fc_param(f), self.fc_lm(f)


def weights_path(source: Path | str | None = None) -> Path:
    """The safetensors file in ``source`` (a folder or the file itself; default
    ``../shared/data/teachers/3ddfa_v2`` beside the repository)."""
    p = Path(source) if source is not None else DEFAULT_SOURCE
    return p / WEIGHTS_FILE if p.is_dir() else p


def load_3ddfa(source: Path | str | None = None) -> MobileNetV1:
    """MobileNetV1 with 3DDFA_V2's trained weights, loaded strictly, in eval mode.

    Strict loading is the check that this file's architecture is the trained one: a
    missing, extra or reshaped tensor raises instead of leaving a layer random."""
    from safetensors.torch import load_file

    path = weights_path(source)
    if not path.exists():
        raise FileNotFoundError(f"3DDFA_V2 weights not found at {path} (nothing is downloaded; "
                                f"pass the folder that holds {WEIGHTS_FILE})")
    net = MobileNetV1()
    net.load_state_dict(load_file(str(path)), strict=True)
    return net.eval()
