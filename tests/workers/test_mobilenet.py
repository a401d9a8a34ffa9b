"""The MobileNetV1-0.5 trunk written from 3DDFA_V2's description loads its weights strictly."""
import pytest
import torch
from safetensors.torch import load_file

from workers.mobilenet import DEFAULT_SOURCE, FEATURES, MobileNetV1, load_3ddfa, weights_path

pytestmark = pytest.mark.skipif(not weights_path().exists(), reason="3DDFA_V2 weights not in ../shared")


def test_every_tensor_of_the_file_has_a_module_of_the_same_name_and_shape():
    file = load_file(str(weights_path()))
    mine = {k: v for k, v in MobileNetV1().state_dict().items() if not k.endswith("num_batches_tracked")}
    assert set(mine) == set(file)
    assert all(mine[k].shape == file[k].shape for k in file)
    net = load_3ddfa()                                       # strict=True inside
    assert not net.training
    assert torch.equal(net.dw5_6.conv_sep.weight, file["dw5_6.conv_sep.weight"])


def test_pooled_features_are_what_both_heads_read():
    net = load_3ddfa(DEFAULT_SOURCE)
    x = torch.randn(3, 3, 120, 120)
    with torch.no_grad():
        f = net.pooled(x)
        param, lm = net(x)
    assert f.shape == (3, FEATURES) == (3, 512)
    assert param.shape == (3, 62) and lm.shape == (3, 136)
    assert torch.allclose(param, net.fc_param(f)) and torch.allclose(lm, net.fc_lm(f))
    assert net.pooled(torch.randn(1, 3, 128, 128)).shape == (1, 512)   # any input size


def test_a_file_that_does_not_match_is_refused(tmp_path):
    from safetensors.torch import save_file

    file = load_file(str(weights_path()))
    del file["fc_lm.bias"]
    save_file(file, str(tmp_path / "mb05_120x120.safetensors"))
    with pytest.raises(RuntimeError, match="fc_lm.bias"):
        load_3ddfa(tmp_path)
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        load_3ddfa(tmp_path / "absent")
