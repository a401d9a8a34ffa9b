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
