"""The regression networks: heads' shapes, and the mb05 trunk started from 3DDFA_V2."""
import pytest
import torch

from workers.mobilenet import load_3ddfa, weights_path
from workers.networks import HEADS, INPUT_SIZE, FaceRegressor, ShapeBranch, ShapeInput, init_from_3ddfa


@pytest.mark.parametrize("arch", ["tiny", "mb05"])
def test_every_head_has_its_documented_width(arch):
    size = INPUT_SIZE.get(arch, 64)
    net = FaceRegressor(arch).eval()
    out = net(torch.zeros(2, 3, size, size))
    assert out.pop("embedding").shape == (2, net.heads["expression"].in_features)
    assert {k: v.shape for k, v in out.items()} == {k: (2, n) for k, n in HEADS.items()}


@pytest.mark.skipif(not weights_path().exists(), reason="3DDFA_V2 weights not beside the checkout")
def test_mb05_starts_from_3ddfa_trunk_seeing_rgb_as_it_saw_bgr():
    """The copied trunk gives 3DDFA_V2's own pooled features: on an RGB crop exactly what
    3DDFA_V2 gives on the same crop in BGR (the first convolution's channels reversed)."""
    torch.manual_seed(0)
    rgb = torch.rand(3, 3, 120, 120) * 2 - 1
    src = load_3ddfa()
    model = init_from_3ddfa(FaceRegressor("mb05")).eval()
    with torch.no_grad():
        ours, theirs = model.pooled(rgb), src.pooled(rgb.flip(1))
    assert torch.allclose(ours, theirs, atol=1e-5)
    fresh = FaceRegressor("mb05").eval()
    with torch.no_grad():
        assert not torch.allclose(fresh.pooled(rgb), theirs, atol=1e-2)
    with pytest.raises(ValueError, match="mb05"):
        init_from_3ddfa(FaceRegressor("tiny"))


def test_identity_shape_head_reads_the_trunk_in_two_by_two_cells():
    """ShapeInput.TRUNK_2X2 swaps the embedding's shape head for one on the trunk's 2×2
    cells: alpha follows where features sit in the face, every other output is unchanged."""
    torch.manual_seed(0)
    base = FaceRegressor("tiny").eval()
    net = FaceRegressor("tiny", ShapeInput.TRUNK_2X2).eval()
    missing, unexpected = net.load_state_dict(base.state_dict(), strict=False)
    assert set(missing) == {"shape_head.weight", "shape_head.bias"}
    assert set(unexpected) == {"heads.shape.weight", "heads.shape.bias"}
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = base(x), net(x)
        maps = net.trunk(net.stem(x))
        cells = torch.nn.functional.adaptive_avg_pool2d(maps, 2).flatten(1)
    assert b["shape"].shape == (2, HEADS["shape"])
    assert torch.allclose(b["shape"], net.shape_head(cells))
    assert all(torch.equal(a[k], b[k]) for k in a if k != "shape")


def test_identity_branch_reads_its_own_blocks_and_changes_no_other_output():
    """ShapeInput.BRANCH: alpha comes from a copy of trunk blocks after ``split``, pooled to
    2×2 cells; every other output is the network's as before, bit for bit."""
    torch.manual_seed(0)
    base = FaceRegressor("tiny").eval()
    net = FaceRegressor("tiny", ShapeInput.BRANCH, ShapeBranch(split=2, depth=1)).eval()
    old = {k: v for k, v in base.state_dict().items() if not k.startswith("heads.shape.")}
    missing, unexpected = net.load_state_dict(old, strict=False)
    assert not unexpected and all(k.startswith(("shape_branch.", "shape_head.")) for k in missing)
    with torch.no_grad():
        net.shape_branch[0].conv1.weight.mul_(1.5)        # the branch's blocks are its own
        x = torch.rand(2, 3, 64, 64)
        a, b = base(x), net(x)
        cells = torch.nn.functional.adaptive_avg_pool2d(net.shape_branch(net.shared(x, 2)), 2).flatten(1)
        assert torch.allclose(b["shape"], net.shape_head(cells))
        assert not torch.equal(net.shape_branch[0].conv1.weight, net.trunk[2].conv1.weight)
    assert b["shape"].shape == (2, HEADS["shape"])
    assert all(torch.equal(a[k], b[k]) for k in a if k != "shape")


def test_identity_branch_goes_with_its_shape_input_and_inside_the_trunk():
    with pytest.raises(ValueError, match="ShapeInput.BRANCH"):
        FaceRegressor("tiny", ShapeInput.BRANCH)
    with pytest.raises(ValueError, match="ShapeInput.BRANCH"):
        FaceRegressor("tiny", ShapeInput.TRUNK_2X2, ShapeBranch(2, 1))
    with pytest.raises(ValueError, match="inside the trunk"):
        FaceRegressor("tiny", ShapeInput.BRANCH, ShapeBranch(split=3, depth=2))
