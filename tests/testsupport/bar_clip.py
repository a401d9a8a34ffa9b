"""A test clip whose frames tell their own index: a white bar moving STEP px a frame over
static noise (the noise makes keyframes large enough to need RTP fragmentation). Shared
by the live-source and publisher tests."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np

W, H, N, FPS, STEP, BAR = 160, 120, 30, 25, 5, 8


def write_bar_clip(path: Path) -> Path:
    """N frames at FPS; the bar's place tells a frame's index in the file (mod N)."""
    background = np.random.default_rng(0).integers(60, 140, (H, W, 3), dtype=np.uint8)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        for i in range(N):
            image = background.copy()
            image[:, STEP * i:STEP * i + BAR] = 240
            for p in s.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def bar_index(image: np.ndarray) -> int:
    """The file index (mod N) a decoded frame shows, from its bar; -1 if there is none."""
    bright = np.flatnonzero(image[..., 0].mean(axis=0) > 180)
    return round((bright.mean() - (BAR - 1) / 2) / STEP) if bright.size else -1
