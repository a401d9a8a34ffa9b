"""workers.onnx_network: the CPU runs the regressor's network exported to ONNX Runtime; what
users read must be what torch computes, crop for crop, at every batch size, mirror-averaged
or not, with the emotion branch; a network that does not export runs on torch (auto) or is
refused with a clear error (onnxruntime)."""
import logging

import numpy as np
import pytest
import torch
from torch import nn

from streamer.config import ConfigError, load_config
from workers import checkpoint
from workers.crops import CropRule, crop_faces, to_tensor
from workers.mirror import MirrorAveraged
from workers.onnx_network import ExportError, OnnxNetwork, for_cpu
from workers.regressor import Regressor
from workers.runtime import Runtime

FIELDS = ("expression", "euler", "quaternion", "centre", "scale", "shape", "landmarks", "emotion_probs",
          "presence", "luminance", "contrast", "sharpness")


@pytest.fixture(scope="module")
def both():
    return {r: Regressor.load(device="cpu", runtime=r) for r in (Runtime.AUTO, Runtime.TORCH)}


def _real_crops(rule: CropRule, n: int) -> torch.Tensor:
    """``n`` crops of a real face, each shifted and zoomed a little, so that they differ."""
    from conftest import REAL_MEDIA
    from PIL import Image

    image = np.asarray(Image.open(REAL_MEDIA / "obama-720p.jpg").convert("RGB"))
    rng = np.random.default_rng(0)
    box = np.array([588.0, 58.0, 742.0, 280.0])   # the detector's box
    boxes = np.stack([box + rng.normal(0, 8, 4) for _ in range(n)]).astype(np.float32)
    return to_tensor(crop_faces(image, boxes, rule)[0], rule)


@pytest.mark.parametrize("n", [1, 3, 37])   # 37: more than the mirror wrapper's chunk of 32
def test_onnx_runtime_reads_what_torch_does(both, n):
    auto, ref = both[Runtime.AUTO], both[Runtime.TORCH]
    assert isinstance(auto.model, MirrorAveraged) and isinstance(auto.model.network, OnnxNetwork)
    assert not isinstance(ref.model.network, OnnxNetwork)
    x = _real_crops(auto.rule, n)
    mirror = np.arange(n) % 2 == 0          # files' crops averaged, cameras' not, in one batch
    got, want = auto(x, mirror), ref(x, mirror)
    for name in FIELDS:
        np.testing.assert_allclose(np.asarray(getattr(got, name)), np.asarray(getattr(want, name)),
                                   atol=2e-4, rtol=1e-4, err_msg=name)
    assert np.abs(got.euler - want.euler).max() < 0.01          # degrees
    assert got.emotion_probs.argmax(1).tolist() == want.emotion_probs.argmax(1).tolist()


def test_a_second_load_reads_the_graph_the_first_exported(tmp_path, monkeypatch):
    from workers import onnx_network

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    x = _real_crops(CropRule.from_meta(checkpoint.load_meta(checkpoint.default_path())), 2)
    first = Regressor.load(device="cpu", runtime=Runtime.AUTO)
    (graph,) = (tmp_path / "facestream" / "onnx").glob("*.onnx")

    def no_export(*_):
        raise AssertionError("exported again")
    monkeypatch.setattr(onnx_network, "_export", no_export)
    again = Regressor.load(device="cpu", runtime=Runtime.AUTO)
    np.testing.assert_array_equal(again(x).expression, first(x).expression)

    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    graph.write_bytes(b"not a graph")                     # damaged: exported again, and rewritten
    healed = Regressor.load(device="cpu", runtime=Runtime.AUTO)
    np.testing.assert_array_equal(healed(x).expression, first(x).expression)
    assert graph.stat().st_size > 1_000_000


def test_another_network_is_cached_under_another_name(tmp_path, monkeypatch):
    from workers.onnx_network import _cache_path
    from workers.regressor import _folded

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    model, meta = checkpoint.load(checkpoint.default_path())
    size = int(meta["crop"]["size"])
    a = _cache_path(_folded(model.eval()), size)
    with torch.no_grad():
        model.heads["expression"].bias[0] += 1e-3         # one weight
    b = _cache_path(_folded(model), size)
    assert a is not None and b is not None and a != b and a.parent == b.parent == tmp_path / "facestream" / "onnx"
    assert _cache_path(_NoOnnx(), 8) is None              # no traced code: never cached


def test_it_uses_torchs_thread_count():
    model, meta = checkpoint.load(checkpoint.default_path())
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        net = for_cpu(model.eval(), int(meta["crop"]["size"]), Runtime.AUTO)
    finally:
        torch.set_num_threads(before)
    assert isinstance(net, OnnxNetwork)
    assert net._session.get_session_options().intra_op_num_threads == 1


class _NoOnnx(nn.Module):
    """A network ONNX has no operator for (a singular value decomposition)."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"s": torch.linalg.svdvals(x.flatten(2))}


def test_a_network_that_does_not_export_runs_on_torch_or_is_refused(caplog):
    net = _NoOnnx()
    with caplog.at_level(logging.WARNING, logger="workers.onnx_network"):
        assert for_cpu(net, 8, Runtime.AUTO) is net
    assert "running it with torch" in caplog.text
    with pytest.raises(ExportError, match="could not be exported to ONNX"):
        for_cpu(net, 8, Runtime.ONNXRUNTIME)
    assert for_cpu(net, 8, Runtime.TORCH) is net


def test_model_runtime_is_a_checked_choice(tmp_path):
    assert load_config(None).model.runtime is Runtime.AUTO
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  runtime: torch\n")
    assert load_config(path).model.runtime is Runtime.TORCH
    path.write_text("model:\n  runtime: tensorrt\n")
    with pytest.raises(ConfigError, match="model.runtime") as e:
        load_config(path)
    assert "onnxruntime" in str(e.value)
