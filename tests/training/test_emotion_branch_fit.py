"""training.emotion_branch: the branch learns from FER2013 faces cut as the service cuts
them, and its temperature is the one that calibrates it."""
import numpy as np
import torch

from training.emotion_branch import crops, frozen_bn
from training.emotion_fit import fit_temperature
from training.wild_data import FER
from training.wild_teach import prior_box
from workers.crops import CropRule, crop_faces, to_tensor
from workers.emotion_branch import EmotionBranch
from workers.networks import FaceRegressor


def test_unaugmented_crops_are_the_services_crops():
    rule = CropRule(size=120, enlarge=0.25)
    images = FER.read(0, 16)["image"]
    want = to_tensor(np.stack([crop_faces(im, prior_box(FER)[None], rule)[0][0] for im in images]), rule)
    got = crops(torch.from_numpy(images), rule, False, torch.Generator())
    assert (got - want).abs().mean() < 2e-3          # bilinear sampling both, uint8 rounding apart
    # augmented: the same faces moved, mirrored and relit, not other faces
    aug = crops(torch.from_numpy(images), rule, True, torch.Generator().manual_seed(1))
    assert aug.shape == want.shape and (aug - want).abs().mean() > 0.02
    assert np.corrcoef(aug.mean((1, 2, 3)), want.mean((1, 2, 3)))[0, 1] > 0.5


def test_temperature_recovers_the_scale_that_calibrates():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 7, (4000,), generator=g)
    true = torch.randn(4000, 7, generator=g) + 2.0 * torch.nn.functional.one_hot(y, 7)
    # labels drawn from softmax(true): true logits are calibrated; 0.5 x them are too soft
    y = torch.multinomial(torch.softmax(true, 1), 1, generator=g)[:, 0]
    assert abs(fit_temperature((true * 0.5).numpy(), y.numpy()) - 0.5) < 0.08


def test_training_keeps_the_trunks_batch_norm_statistics():
    branch = frozen_bn(EmotionBranch(FaceRegressor("mb05").trunk, 6))
    before = branch.blocks[0].bn_sep.running_mean.clone()
    branch(torch.randn(8, 256, 8, 8))
    assert torch.equal(branch.blocks[0].bn_sep.running_mean, before)
    assert branch.classifier.training
