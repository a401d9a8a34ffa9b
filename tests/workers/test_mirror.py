"""workers.mirror: the crop and its mirror image, each reading brought back to the
original side and averaged. A mirrored crop must read as the exact mirror of the crop
(yaw and roll negated, eta mirrored, landmarks swapped), and eta's mirror map must be the
blendshapes' left/right swap."""
import json

import numpy as np
import pytest
import torch

from workers import checkpoint, face_model
from workers.mirror import MIRROR68, MirrorAveraged, blend_mirror, eta_mirror, for_inference
from workers.networks import FaceRegressor
from workers.regressor import decode


def test_eta_mirror_is_the_blendshape_swap_and_undoes_itself():
    fm = face_model.load()
    M = eta_mirror()
    np.testing.assert_allclose(M @ M, np.eye(29), atol=1e-3)
    w = np.random.default_rng(0).uniform(0, 1, (200, 53))
    eta, eta_swapped = w @ fm.blend_to_eta.T, w[:, blend_mirror(fm.blend_names)] @ fm.blend_to_eta.T
    # the 29-D basis keeps 99.3% of the blendshapes' energy: the swap is that close to closed
    err = np.linalg.norm(eta @ M.T - eta_swapped, axis=1) / np.linalg.norm(eta_swapped, axis=1)
    assert err.max() < 0.02
    names = fm.blend_names
    perm = blend_mirror(names)
    assert names[perm[names.index("eyeBlink_L")]] == "eyeBlink_R"
    assert names[perm[names.index("jawLeft")]] == "jawRight"
    assert names[perm[names.index("jawOpen")]] == "jawOpen"


def test_a_mirrored_crop_reads_as_the_mirror_of_the_crop():
    """Exact by construction, for any network: the two views swap places."""
    torch.manual_seed(0)
    net = MirrorAveraged(FaceRegressor("tiny").eval()).eval()
    x = torch.rand(3, 3, 120, 120) * 2 - 1
    with torch.inference_mode():
        a, b = decode(net(x), 120), decode(net(x.flip(-1)), 120)
    np.testing.assert_allclose(b.euler[:, 0], -a.euler[:, 0], atol=1e-3)   # yaw
    np.testing.assert_allclose(b.euler[:, 1], a.euler[:, 1], atol=1e-3)    # pitch
    np.testing.assert_allclose(b.euler[:, 2], -a.euler[:, 2], atol=1e-3)   # roll
    np.testing.assert_allclose(b.expression, a.expression @ eta_mirror().T, atol=1e-4)
    np.testing.assert_allclose(b.centre[:, 0], 120 - a.centre[:, 0], atol=1e-3)
    np.testing.assert_allclose(b.scale, a.scale, rtol=1e-5)
    lm = a.landmarks[:, MIRROR68].copy()
    lm[..., 0] = 120 - lm[..., 0]
    np.testing.assert_allclose(b.landmarks, lm, atol=1e-3)


def test_a_checkpoint_opts_in_through_its_json():
    net = FaceRegressor("tiny")
    assert for_inference(net, {}) is net
    assert for_inference(net, {"inference": {"mirror_average": False}}) is net
    wrapped = for_inference(net, {"inference": {"mirror_average": True}})
    assert isinstance(wrapped, MirrorAveraged) and wrapped.network is net
    assert checkpoint.load_meta(checkpoint.default_path())["inference"] == {"mirror_average": True}


def test_predict_reads_a_mirrored_photo_as_the_mirrored_face(capsys, tmp_path):
    """Through `facestream predict --no-detect` (the whole image as the crop, so the two
    crops are exact mirror images): yaw and roll change sign, pitch stays, to the printed
    precision, and the left and right blendshapes swap."""
    from PIL import Image

    from streamer.cli import main

    photo = face_model.REPO_ROOT.parent / "shared" / "data" / "real" / "obama-720p.jpg"
    image = Image.open(photo).convert("RGB")
    side = min(image.size)
    left = (image.size[0] - side) // 2
    square = image.crop((left, 0, left + side, side))
    paths = [tmp_path / "face.png", tmp_path / "mirror.png"]
    square.save(paths[0])
    square.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(paths[1])
    assert main(["predict", "--json", "--no-detect", *map(str, paths)]) == 0
    a, b = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert abs(a["pose"]["yaw"] + b["pose"]["yaw"]) < 1e-3 and abs(a["pose"]["roll"] + b["pose"]["roll"]) < 1e-3
    assert abs(a["pose"]["pitch"] - b["pose"]["pitch"]) < 1e-3
    for name in ("mouthSmile", "eyeBlink"):
        assert abs(a["blendshapes"][name + "_L"] - b["blendshapes"][name + "_R"]) < 0.02


def test_some_crops_averaged_others_one_view_and_chunks_change_nothing():
    torch.manual_seed(1)
    network = FaceRegressor("tiny").eval()
    x = torch.rand(5, 3, 120, 120) * 2 - 1
    mask = torch.tensor([True, False, True, False, False])
    with torch.inference_mode():
        every, one, some = MirrorAveraged(network)(x), network(x), MirrorAveraged(network)(x, mask)
        chunked = MirrorAveraged(network, chunk=2)(x, mask)
    for key in ("rot6d", "expression", "trans", "landmarks"):
        np.testing.assert_allclose(some[key][mask].numpy(), every[key][mask].numpy(), atol=1e-5, err_msg=key)
        np.testing.assert_allclose(some[key][~mask].numpy(), one[key][~mask].numpy(), atol=1e-5, err_msg=key)
        np.testing.assert_allclose(chunked[key].numpy(), some[key].numpy(), atol=1e-5, err_msg=key)
    np.testing.assert_allclose(some["shape"].numpy(), one["shape"].numpy(), atol=1e-5)  # alpha: the crop's own


class _YawFromCorner(torch.nn.Module):
    """Reads yaw 50° times the crop's top-left value: a crop and its mirror image can be
    made to agree or to read opposite ways."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        from workers.pose import matrix_from_euler
        n = len(x)
        rot = torch.stack([torch.from_numpy(matrix_from_euler(50.0 * float(v), 0.0, 0.0)).float()
                           for v in x[:, 0, 0, 0]])
        return {"rot6d": torch.cat([rot[:, :, 0], rot[:, :, 1]], -1), "expression": torch.zeros(n, 29),
                "trans": torch.zeros(n, 3), "landmarks": torch.zeros(n, 136)}


def test_two_views_that_read_opposite_ways_are_not_blended():
    from workers.mirror import rotation_gap_deg
    from workers.pose import euler_from_matrix, matrix_from_6d
    x = torch.zeros(2, 3, 8, 8)
    x[:, 0, 0, 0] = 1.0          # the crop reads yaw +50
    x[0, 0, 0, -1] = -1.0        # crop 0's mirror image reads -50: +50 brought back, they agree
    x[1, 0, 0, -1] = 1.0         # crop 1's reads +50: -50 brought back, its mirror reading
    with torch.inference_mode():
        out = MirrorAveraged(_YawFromCorner())(x)
    yaws = [euler_from_matrix(matrix_from_6d(r).numpy())[0] for r in out["rot6d"]]
    assert yaws[0] == pytest.approx(50.0, abs=1e-3)
    assert yaws[1] == pytest.approx(50.0, abs=1e-3)    # the original view, not their blend (0)
    a = torch.tensor([[1.0, 0, 0, 0, 1, 0]])
    b = torch.tensor([[0.0, 1, 0, -1, 0, 0]])          # 90 degrees about z
    assert float(rotation_gap_deg(a, b)[0]) == pytest.approx(90.0, abs=1e-3)
