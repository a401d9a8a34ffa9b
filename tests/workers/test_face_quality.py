"""workers.face_quality on a real face: light and sharpness of the face box, whatever its
size, and the emotion label's too_dark / too_blurred that read them."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.config import ConfigError, load_config
from workers import face_quality
from workers.crops import CropRule, crop_faces, to_tensor
from workers.emotion_labels import EmotionConfig, label

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
RULE = CropRule()
HAPPY = np.array([[0.02, 0.02, 0.02, 0.85, 0.03, 0.03, 0.03]])


@pytest.fixture(scope="module")
def face():
    """obama-720p.jpg and RetinaFace's box of its face."""
    from streamer.config import DetectorConfig
    from workers.detector import FaceDetector

    image = cv2.cvtColor(cv2.imread(str(REAL / "obama-720p.jpg")), cv2.COLOR_BGR2RGB)
    box = FaceDetector(DetectorConfig()).detect([image])[0].boxes[:1]
    assert len(box) == 1
    return image, box


def _measure(image: np.ndarray, box: np.ndarray) -> tuple[float, float, float]:
    crops, _ = crop_faces(image, box, RULE)
    lum, con, sharp = face_quality.measure(to_tensor(crops, RULE), RULE)
    return float(lum[0]), float(con[0]), float(sharp[0])


def _label(measures: tuple[float, float, float]) -> str:
    lum, con, sharp = measures
    return label(HAPPY, face_px=100, yaw=0, pitch=0, luminance=lum, contrast=con, sharpness=sharp)[0]


def test_an_ordinary_face_is_measured_as_it_looks_and_keeps_its_class(face):
    image, box = face
    lum, con, sharp = _measure(image, box)
    rule = EmotionConfig()
    assert 80 < lum < 200 and con > 2 * rule.min_contrast and sharp > 1.5 * rule.min_sharpness
    assert _label((lum, con, sharp)) == "happy"


def test_a_dark_face_says_too_dark(face):
    image, box = face
    dim = (image.astype(np.float32) * 0.12).astype(np.uint8)     # a face in the shadows of a film
    lum, con, sharp = _measure(dim, box)
    full = _measure(image, box)
    assert lum == pytest.approx(0.12 * full[0], rel=0.05) and con == pytest.approx(0.12 * full[1], rel=0.1)
    assert con < EmotionConfig().min_contrast                      # 4 grey levels of spread
    assert _label((lum, con, sharp)) == "too_dark"
    # sharpness is relative to the contrast: dimming alone does not read as blur
    assert sharp == pytest.approx(full[2], rel=0.25)
    # dim but readable (a film's dim faces have a spread near 20): the class stays
    dusk = _measure((image.astype(np.float32) * 0.3).astype(np.uint8), box)
    assert dusk[1] > 10 and _label(dusk) == "happy"


def test_a_blurred_face_says_too_blurred(face):
    image, box = face
    side = float(min(box[0, 2] - box[0, 0], box[0, 3] - box[0, 1]))
    blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=side / 8)    # defocus: mouth and brows smoothed away
    lum, con, sharp = _measure(blurred, box)
    assert sharp < EmotionConfig().min_sharpness < _measure(image, box)[2] / 5
    assert lum > EmotionConfig().min_luminance and con > EmotionConfig().min_contrast   # still lit
    assert _label((lum, con, sharp)) == "too_blurred"


def test_sharpness_does_not_depend_on_face_size_above_the_measuring_side(face):
    image, box = face
    big = _measure(image, box)
    scale = 48 / float(box[0, 2] - box[0, 0])                     # the same face 48 px wide
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    got = _measure(small, box * scale)
    assert got[0] == pytest.approx(big[0], rel=0.05)
    assert got[2] == pytest.approx(big[2], rel=0.15)


def test_the_order_of_the_reasons_and_unmeasured_faces():
    rule = EmotionConfig()
    p = np.repeat(HAPPY, 4, 0)
    got = label(p, face_px=[10, 100, 100, 100], yaw=[0, 0, 80, 0], pitch=0, rule=rule,
                luminance=[5, 5, 100, np.nan], contrast=[2, 2, 40, np.nan], sharpness=[0.01, 0.01, 0.01, np.nan])
    # size first, then light, then sharpness, then pose; not measured (NaN) passes
    assert got == ["too_small", "too_dark", "too_blurred", "happy"]
    assert label(HAPPY, luminance=100, contrast=rule.min_contrast - 1, sharpness=0.5) == ["too_dark"]


def test_an_empty_batch_measures_nothing():
    import torch

    assert all(len(v) == 0 for v in face_quality.measure(torch.zeros(0, 3, 128, 128), RULE))


@pytest.mark.parametrize("text, message", [
    ("emotion:\n  min_luminance: 300\n", "emotion.min_luminance: must be <= 255, got 300.0"),
    ("emotion:\n  min_contrast: -1\n", "emotion.min_contrast: must be >= 0, got -1.0"),
    ("emotion:\n  min_sharpness: -0.1\n", "emotion.min_sharpness: must be >= 0, got -0.1"),
])
def test_the_thresholds_are_checked_when_the_config_is_read(tmp_path, text, message):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError, match=f"c.yaml: {message}$"):
        load_config(tmp_path / "c.yaml")
