"""workers.regressor: the CPU path folds batch norm into the convolutions; what it
computes must be the checkpoint's own network (mirror-averaged, as its JSON asks), output
for output."""
import numpy as np
import torch

from workers import checkpoint
from workers.mirror import MirrorAveraged, for_inference
from workers.regressor import Regressor


def test_folded_network_computes_what_the_checkpoint_does():
    model, meta = checkpoint.load(checkpoint.default_path())
    model.eval()
    regressor = Regressor(model, meta, device="cpu")
    kinds = {type(m).__name__ for m in regressor.model.modules()}
    assert "BatchNorm2d" not in kinds  # folded away
    assert isinstance(regressor.model, MirrorAveraged)  # the shipped JSON asks for it
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (5, 3, 120, 120)).astype(np.float32))
    with torch.inference_mode():
        want = for_inference(model, meta)(x)
        got = regressor.model(x.contiguous(memory_format=torch.channels_last))
    assert want.keys() == got.keys()
    for key in want:
        np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), atol=2e-5, rtol=1e-4, err_msg=key)


def test_each_prediction_carries_its_crops_light_and_sharpness():
    from workers import face_quality
    from workers.crops import CropRule, to_tensor
    from workers.prediction import slice_prediction

    regressor = Regressor(*checkpoint.load(checkpoint.default_path()), device="cpu")
    rule = CropRule.from_meta(regressor.meta)
    crops = np.random.default_rng(1).integers(0, 256, (3, rule.size, rule.size, 3), dtype=np.uint8)
    crops[1] //= 10                                   # a dark one
    x = to_tensor(crops, rule)
    pred = regressor(x)
    want = face_quality.measure(x, rule)
    for got, w in zip((pred.luminance, pred.contrast, pred.sharpness), want):
        assert got.shape == (3,) and got.dtype == np.float32
        np.testing.assert_allclose(got, w, rtol=1e-5)
    assert pred.luminance[1] < 0.15 * pred.luminance[0]
    assert slice_prediction(pred, 1, 2).luminance[0] == pred.luminance[1]   # they slice like the rest
