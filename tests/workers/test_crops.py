"""workers.crops: ExpNet's crop rule, its inverse map and the normalisation."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from workers.crops import CropRule, crop_affines, crop_faces, crop_to_image, to_tensor

torch.set_num_threads(1)


def gradient_image(h: int = 200, w: int = 300) -> np.ndarray:
    """Every pixel distinct enough to tell where a crop came from (R = x, G = y)."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (np.arange(w) % 256)[None, :]
    img[..., 1] = (np.arange(h) % 256)[:, None]
    img[..., 2] = 77
    return img


def test_side_length_and_centre():
    rule = CropRule(size=128, enlarge=0.25)
    boxes = np.array([[10, 20, 50, 100], [0, 0, 60, 30]], float)  # 40x80 and 60x30
    a = crop_affines(boxes, rule)
    side = np.array([80, 60]) * 1.5
    assert a[:, 0, 0] == pytest.approx(side / 128) and a[:, 1, 1] == pytest.approx(side / 128)
    assert a[:, 0, 1] == pytest.approx(0) and a[:, 1, 0] == pytest.approx(0)
    centre = crop_to_image(np.full((2, 1, 2), 64.0), a)[:, 0]
    assert centre == pytest.approx(np.array([[30, 60], [30, 15]]))
    corners = crop_to_image(np.array([[[0, 0], [128, 128]]] * 2, float), a)
    assert corners[0] == pytest.approx(np.array([[30 - 60, 60 - 60], [30 + 60, 60 + 60]]))


def test_centre_pixel_equals_image_at_box_centre():
    img = gradient_image()
    # side 64 * 2 = 128 -> scale 1: crop pixels are image pixels, no interpolation.
    rule = CropRule(size=128, enlarge=0.5)
    box = np.array([[120.0, 70.0, 184.0, 130.0]])  # 64x60, centre (152, 100)
    crops, affines = crop_faces(img, box, rule)
    assert crops.shape == (1, 128, 128, 3) and crops.dtype == np.uint8
    np.testing.assert_array_equal(crops[0, 64, 64], img[100, 152])
    np.testing.assert_array_equal(crops[0], img[100 - 64:100 + 64, 152 - 64:152 + 64])
    assert crop_to_image(np.array([[[64.0, 64.0]]]), affines)[0, 0] == pytest.approx([152, 100])


def test_corner_box_is_zero_padded_outside_the_frame():
    img = np.full((100, 100, 3), 200, np.uint8)
    rule = CropRule(size=64, enlarge=0.25)
    box = np.array([[-10.0, -10.0, 30.0, 30.0]])  # centre (10, 10), side 40 * 1.5 = 60
    crops, affines = crop_faces(img, box, rule)
    crop = crops[0]
    # The frame starts at image 0, i.e. crop (0 - (10 - 30)) / (60 / 64) = 21.33.
    edge = (0 - affines[0, 0, 2]) / affines[0, 0, 0]
    assert edge == pytest.approx(64 / 3)
    assert np.all(crop[:21, :] == 0) and np.all(crop[:, :21] == 0)
    assert np.all(crop[23:, 23:] == 200)


def test_batch_matches_single_crops_and_empty_batch():
    img = gradient_image()
    rule = CropRule(size=32)
    boxes = np.array([[5, 5, 40, 60], [100, 50, 180, 120], [250, 150, 320, 230]], float)
    crops, affines = crop_faces(img, boxes, rule)
    for i in range(3):
        c, a = crop_faces(img, boxes[i:i + 1], rule)
        np.testing.assert_array_equal(c[0], crops[i])
        np.testing.assert_array_equal(a[0], affines[i])
    crops, affines = crop_faces(img, np.zeros((0, 4)), rule)
    assert crops.shape == (0, 32, 32, 3) and affines.shape == (0, 2, 3)


def test_crop_to_image_round_trip_through_pixels():
    """A feature drawn in the image is found in the crop where the affine says."""
    img = np.zeros((240, 320, 3), np.uint8)
    img[150:152, 201:203] = 255  # a 2x2 dot covering [201, 203) x [150, 152): centre (202, 151)
    rule = CropRule(size=128, enlarge=0.25)
    box = np.array([[160.0, 100.0, 240.0, 180.0]])  # side 120 -> scale 120/128 (< 1: no blur-out)
    crops, affines = crop_faces(img, box, rule)
    w = crops[0, ..., 0].astype(float)
    ys, xs = np.mgrid[:128, :128]
    found = np.array([[[(xs * w).sum() / w.sum() + 0.5, (ys * w).sum() / w.sum() + 0.5]]])
    assert crop_to_image(found, affines)[0, 0] == pytest.approx([202, 151], abs=0.15)


def test_to_tensor_normalises():
    crops = np.zeros((2, 4, 4, 3), np.uint8)
    crops[0, ..., 0] = 255
    crops[1, ..., 2] = 51
    rule = CropRule(size=4, mean=(0.5, 0.4, 0.3), std=(0.5, 0.2, 0.1))
    t = to_tensor(crops, rule)
    assert t.shape == (2, 3, 4, 4) and t.dtype == torch.float32 and t.is_contiguous()
    assert t[0, 0].unique().tolist() == pytest.approx([1.0])
    assert t[0, 1].unique().tolist() == pytest.approx([-2.0])
    assert t[1, 2].unique().tolist() == pytest.approx([(0.2 - 0.3) / 0.1])


def test_meta_round_trip_through_json():
    rule = CropRule(size=96, enlarge=0.3, mean=(0.1, 0.2, 0.3), std=(1.0, 2.0, 3.0))
    meta = json.loads(json.dumps({"arch": "resnet", **rule.to_meta()}))
    assert meta["crop"] == {"size": 96, "enlarge": 0.3, "mean": [0.1, 0.2, 0.3], "std": [1.0, 2.0, 3.0]}
    assert CropRule.from_meta(meta) == rule
    with pytest.raises(ValueError, match="no 'crop' entry"):
        CropRule.from_meta({"arch": "resnet"})
    with pytest.raises(ValueError, match="exactly the keys"):
        CropRule.from_meta({"crop": {"size": 96}})
