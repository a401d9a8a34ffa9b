"""The teacher pass: canvas geometry, the prior box, and resuming from part files."""
import numpy as np
import pytest

from training import wild_teach
from training.wild_data import AFLW, FER


def test_canvas_maps_back_to_frame_pixels():
    frame = np.zeros((48, 48, 3), np.uint8)
    frame[10:14, 30:34] = 255                                   # a bright square at x 30-34, y 10-14
    canvas, off = wild_teach.to_canvas(frame, FER)
    ys, xs = np.nonzero(canvas[..., 0] > 128)
    assert canvas.shape == (FER.canvas, FER.canvas, 3)
    centre = (np.array([xs.mean(), ys.mean()]) + 0.5 - off) / FER.upscale
    assert np.allclose(centre, [32, 12], atol=0.3)


def test_prior_box_inverts_the_3ddfa_roi_rule_on_aflw():
    from training.teacher_3ddfa import roi_from_box

    assert np.allclose(roi_from_box(wild_teach.prior_box(AFLW)[None])[0], [0, 0, 120, 120])
    assert np.allclose(wild_teach.prior_box(FER), [0, 0, 48, 48])


def test_chunks_are_fixed_and_a_rerun_skips_written_parts(tmp_path):
    if not AFLW.path.exists():
        pytest.skip("AFLW not in ../shared")
    pytest.importorskip("mediapipe")
    assert wild_teach.chunks(AFLW, 1200) == [(0, 500), (500, 1000), (1000, 1200)]
    paths = wild_teach.run(AFLW, tmp_path, limit=20)
    stamp = paths[0].stat().st_mtime_ns
    assert wild_teach.run(AFLW, tmp_path, limit=20) == paths and paths[0].stat().st_mtime_ns == stamp
    raw = wild_teach.load(paths)
    assert list(raw["row"]) == list(range(20))
    assert np.isfinite(raw["det_box"]).all(1).mean() > 0.9 and raw["mp_found"].mean() > 0.7
    found = raw["mp_found"]
    assert np.allclose(np.linalg.det(raw["mp_rot"][found]), 1, atol=1e-4)
