"""Domain-randomised synthetic faces with exact labels (ExpNet-style training data).

A network trained on renders generalises to real frames only if everything it should
ignore varies more in training than it will in use: identity, expression, pose,
perspective, light, skin, eyes, hair, background, occluders and camera defects are all
drawn at random here, while the labels (coefficients, pose, landmarks) stay exact.

``make_sample`` is the one-call entry point; ``sample_scene`` and ``compose`` are its two
halves, for callers that want to render the same scene differently or reuse a render.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from training.render import Camera, RenderResult, Scene, render
from workers.face_model import FaceModel

# Skin albedo anchors from very light to very dark (RGB in [0, 1]); a tone is a random
# point on the polyline through them.
_SKIN_TONES = np.array([
    [0.97, 0.82, 0.73], [0.91, 0.71, 0.59], [0.80, 0.58, 0.44], [0.66, 0.45, 0.31],
    [0.50, 0.32, 0.21], [0.34, 0.21, 0.13], [0.20, 0.12, 0.08],
])
_HAIR = np.array([
    [0.05, 0.04, 0.03], [0.15, 0.09, 0.06], [0.35, 0.22, 0.12], [0.65, 0.50, 0.30],
    [0.50, 0.22, 0.10], [0.60, 0.60, 0.58],
])
_IRIS = np.array([
    [0.28, 0.16, 0.08], [0.10, 0.07, 0.05], [0.30, 0.45, 0.62], [0.32, 0.42, 0.26],
    [0.42, 0.32, 0.16],
])
_FACE_FRACTION = (0.25, 0.45)   # face extent / image size: leaves room for the context crop
_DISTANCE_CM = (35.0, 600.0)    # camera to face centre: wide-angle ... near-orthographic
_CENTER_BOX = (0.3, 0.7)        # face centre within the central 40% of the image
_P_NEUTRAL = 0.2
_MIRROR = {"_L": "_R", "_R": "_L"}   # ARKit side suffixes (the subject's left/right)
_P_OCCLUDE = 0.3


def _mixture(rng: np.random.Generator, inner: float, outer: float, p_inner: float = 0.65) -> float:
    """Uniform on ±inner with probability p_inner, else uniform on ±outer: most samples
    near the common poses, yet the extremes still seen often."""
    lim = inner if rng.random() < p_inner else outer
    return float(rng.uniform(-lim, lim))


def _limit(w: np.ndarray, index: dict, rng: np.random.Generator) -> np.ndarray:
    """Rules of the linear model that any sampler must keep."""
    # Opposite pulls cancel in a linear model; keep one of each pair.
    for a, b in (("jawLeft", "jawRight"), ("mouthLeft", "mouthRight")):
        if a in index and b in index and w[index[a]] > 0 and w[index[b]] > 0:
            w[index[a] if rng.random() < 0.5 else index[b]] = 0
    # mouthClose is a corrective for jawOpen, meaningless (4 cm lip move) on its own.
    if "mouthClose" in index and "jawOpen" in index:
        w[index["mouthClose"]] = min(w[index["mouthClose"]], w[index["jawOpen"]])
    return w


class SparseExpressions:
    """Sparse ARKit weights w in [0, 1]^53: a few of the 53 shapes at a time, uniformly.

    Often mirrored to the other side but sometimes one-sided (winks, lopsided smiles),
    sometimes near full strength; 20% are neutral so the network learns the zero point.
    Every shape is seen, but each is active in only ~7% of faces: the readable actions
    (jaw, smile, blink, brows) are rare. The render shards of the first training stages.
    """

    name = "sparse"

    def __call__(self, rng: np.random.Generator, names: tuple[str, ...]) -> np.ndarray:
        w = np.zeros(len(names), np.float32)
        if rng.random() < _P_NEUTRAL:
            return w
        index = {n: i for i, n in enumerate(names)}
        for i in rng.choice(len(names), size=int(rng.integers(1, 7)), replace=False):
            value = rng.uniform(0.85, 1.0) if rng.random() < 0.25 else rng.uniform(0.1, 1.0)
            w[i] = value
            mirror = _MIRROR.get(names[i][-2:])
            if mirror and names[i][:-2] + mirror in index and rng.random() < 0.6:
                w[index[names[i][:-2] + mirror]] = np.clip(value + rng.normal(0, 0.1), 0, 1)
        return _limit(w, index, rng)


# Facial actions as people make them: (probability, {blendshape: relative weight}), the
# bilateral ones by stem (both sides, sometimes one). The four that users read first come
# often; the rest keep the other shapes in view.
_ACTIONS = (
    (0.35, {"jawOpen": 1.0, "mouthLowerDown": 0.25}),
    (0.30, {"mouthSmile": 1.0, "cheekSquint": 0.4, "eyeSquint": 0.2}),
    (0.30, {"eyeBlink": 1.0}),
    (0.30, {"browInnerUp": 1.0, "browOuterUp": 0.7, "eyeWide": 0.3}),
    (0.15, {"browDown": 1.0, "noseSneer": 0.3}),
    (0.12, {"mouthFrown": 1.0, "mouthShrugLower": 0.4}),
    (0.10, {"mouthPucker": 1.0}),
    (0.10, {"mouthFunnel": 1.0, "jawOpen": 0.2}),
    (0.10, {"eyeSquint": 1.0}),
    (0.08, {"mouthStretch": 1.0, "mouthPress": 0.3}),
)


class ActionExpressions:
    """Expressions built from facial actions (jaw open, smile, blink, brow raise, frown,
    pucker...) that co-occur at random, each at a random strength, usually on both sides
    and sometimes on one (a wink, a lopsided smile), plus up to two random shapes.

    Why: under ``SparseExpressions`` jawOpen moves in 5% of renders and a blink in 6%,
    too rare a signal for the expression head to pick out of everything else that varies;
    here each of the four readable actions is present in about a third of the faces, and
    10% are neutral.
    """

    name = "actions"

    def __call__(self, rng: np.random.Generator, names: tuple[str, ...]) -> np.ndarray:
        w = np.zeros(len(names), np.float32)
        if rng.random() < 0.1:
            return w
        index = {n: i for i, n in enumerate(names)}
        for p, parts in _ACTIONS:
            if rng.random() >= p:
                continue
            strength = rng.uniform(0.8, 1.0) if rng.random() < 0.25 else rng.uniform(0.15, 1.0)
            side = rng.uniform(0.0, 0.3) if rng.random() < 0.2 else 1.0   # one-sided: the weak side's share
            weak = "_L" if rng.random() < 0.5 else "_R"
            for stem, rel in parts.items():
                if stem in index:
                    w[index[stem]] = max(w[index[stem]], strength * rel)
                    continue
                for suffix in ("_L", "_R"):
                    v = strength * rel * (side if suffix == weak else 1.0) + rng.normal(0, 0.05)
                    w[index[stem + suffix]] = max(w[index[stem + suffix]], v)
        for i in rng.choice(len(names), size=int(rng.integers(0, 3)), replace=False):
            w[i] = max(w[i], rng.uniform(0.1, 0.6))
        return _limit(np.clip(w, 0.0, 1.0), index, rng)


EXPRESSIONS = {s.name: s for s in (SparseExpressions, ActionExpressions)}
# draws one face's blendshape weights, in the order of the names given (the classes above)
ExpressionSampler = Callable[[np.random.Generator, tuple[str, ...]], np.ndarray]


def _skin_tone(rng: np.random.Generator) -> np.ndarray:
    x = rng.uniform(0, len(_SKIN_TONES) - 1)
    i = min(int(x), len(_SKIN_TONES) - 2)
    tone = _SKIN_TONES[i] * (1 - (x - i)) + _SKIN_TONES[i + 1] * (x - i)
    return np.clip(tone * rng.normal(1.0, 0.04, 3), 0.02, 1.0)


def _tint(rng: np.random.Generator, sd: float) -> np.ndarray:
    """A colour near white; occasionally strongly coloured (sunset, neon, monitor light)."""
    sd = sd * 3 if rng.random() < 0.15 else sd
    c = np.clip(rng.normal(1.0, sd, 3), 0.3, 1.7)
    return c / c.max() * rng.uniform(0.9, 1.1)


def _light_dir(rng: np.random.Generator) -> np.ndarray:
    """Any direction on the camera's side of the head, biased upward; grazing side light
    (half the face in shadow) included."""
    d = rng.normal(size=3)
    d[1] += 0.4
    d[2] = abs(d[2]) + 0.15
    return d / np.linalg.norm(d)


def _appearance(rng: np.random.Generator, skin: np.ndarray) -> dict:
    hair = np.clip(_HAIR[rng.integers(len(_HAIR))] * rng.normal(1.0, 0.1, 3), 0, 1)
    # Cameras expose for the face: draw the overall brightness, then split it between
    # ambient and directional light (0.6 is a typical n·l on a frontal face).
    ambient = rng.uniform(0.2, 0.8)
    diffuse = np.clip((rng.uniform(0.8, 1.3) - ambient) / 0.6, 0.1, 1.4)
    return dict(
        ambient=ambient, ambient_color=_tint(rng, 0.08),
        diffuse=diffuse, light_dir=_light_dir(rng), light_color=_tint(rng, 0.12),
        specular=rng.uniform(0.0, 0.25), shininess=rng.uniform(5.0, 40.0),
        skin_albedo=skin, albedo_noise=rng.uniform(0.0, 0.06),
        noise_seed=int(rng.integers(2**31)),
        lip_color=np.clip(np.array([0.65, 0.30, 0.30]) * rng.normal(1.0, 0.1, 3), 0, 1),
        lip_strength=rng.uniform(0.2, 0.8),
        brow_color=hair * rng.uniform(0.6, 1.0), brow_strength=rng.uniform(0.3, 0.9),
        socket_darkening=rng.uniform(0.0, 0.4),
        iris_color=np.clip(_IRIS[rng.integers(len(_IRIS))] * rng.normal(1.0, 0.15, 3), 0, 1),
        sclera_color=np.clip(np.array([0.88, 0.86, 0.82]) * rng.normal(1.0, 0.04, 3), 0, 1),
        teeth_color=np.clip(np.array([0.86, 0.83, 0.74]) * rng.normal(1.0, 0.05, 3), 0, 1),
        mouth_color=np.array([0.18, 0.05, 0.05]) * rng.uniform(0.3, 1.2),
        hair_color=hair, hair_strength=0.0 if rng.random() < 0.3 else rng.uniform(0.6, 1.0),
        hairline=rng.normal(0.0, 0.8),
    )


def sample_scene(rng: np.random.Generator, model: FaceModel, size: int = 160,
                 expressions: ExpressionSampler | None = None) -> tuple[Scene, Camera]:
    """A random face, pose, light and camera for a ``size``² image.

    The camera is chosen with the scene because perspective is one of the randomised
    factors: the face spans 40–80% of the image while the camera distance ranges from
    wide-angle (35 cm) to near-orthographic (6 m), the focal length following from both.
    """
    alpha = rng.normal(size=int(model.identity.shape[0])).astype(np.float32)
    if rng.random() < 0.3:
        alpha *= 1.5
    w = (expressions or SparseExpressions())(rng, model.blend_names)
    eta = model.eta_from_blendshapes(w)
    yaw, pitch, roll = _mixture(rng, 45, 90), _mixture(rng, 30, 60), _mixture(rng, 20, 45)

    scene = Scene(alpha=alpha, eta=eta, blendshapes=w, yaw=yaw, pitch=pitch, roll=roll,
                  **_appearance(rng, _skin_tone(rng)))
    ids = model.landmarks68
    lm = (model.mean[ids] + np.tensordot(alpha, model.identity[:, ids], axes=1)
          + np.tensordot(eta, model.expression[:, ids], axes=1))
    lo, hi = lm.min(axis=0), lm.max(axis=0)
    extent = float(max(hi[0] - lo[0], hi[1] - lo[1]))
    distance = float(np.exp(rng.uniform(*np.log(_DISTANCE_CM))))
    focal = rng.uniform(*_FACE_FRACTION) * size * distance / extent
    camera = Camera(size, size, focal)

    cu, cv = rng.uniform(*_CENTER_BOX, size=2) * size
    scale = distance / focal
    target = np.array([(cu - size / 2) * scale, -(cv - size / 2) * scale, -distance])
    scene.t = target - scene.rotation() @ ((lo + hi) / 2)
    return scene, camera


# ---------------------------------------------------------------- backgrounds, occluders

def _smooth_noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Random colour blobs: coarse noise upsampled, plus a finer octave."""
    out = np.zeros((h, w, 3), np.float32)
    octaves = ((int(rng.integers(2, 8)), 1.0), (int(rng.integers(8, 40)), rng.uniform(0, 0.5)))
    for cells, amp in octaves:
        small = rng.uniform(0, 1, size=(cells, cells, 3)).astype(np.float32)
        out += amp * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return out / out.max()


def _gradient(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    a, b = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    theta = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    s = np.cos(theta) * xx + np.sin(theta) * yy
    s = ((s - s.min()) / (np.ptp(s) + 1e-6))[..., None]
    return (a * (1 - s) + b * s).astype(np.float32)


def _shapes(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Clutter: rectangles, discs, lines and stripes over a noise or gradient base."""
    img = (_smooth_noise if rng.random() < 0.5 else _gradient)(rng, h, w)
    for _ in range(int(rng.integers(3, 15))):
        color = tuple(float(c) for c in rng.uniform(0, 1, 3))
        kind = rng.integers(4)
        p = tuple(int(c) for c in rng.integers(-w // 4, w + w // 4, 2))
        q = tuple(int(c) for c in rng.integers(-w // 4, w + w // 4, 2))
        if kind == 0:
            cv2.rectangle(img, p, q, color, -1)
        elif kind == 1:
            cv2.circle(img, p, int(rng.integers(3, w // 3)), color, -1, cv2.LINE_AA)
        elif kind == 2:
            cv2.line(img, p, q, color, int(rng.integers(1, 6)), cv2.LINE_AA)
        else:
            period = int(rng.integers(4, 20))
            stripes = (np.arange(w) // period % 2).astype(np.float32)[None, :, None]
            img = img * (1 - 0.3 * stripes) + 0.3 * stripes * np.array(color, np.float32)
    return img


def _crop(rng: np.random.Generator, source: np.ndarray, h: int, w: int) -> np.ndarray:
    """A random crop (random scale, maybe mirrored) of a user image, resized to h×w."""
    sh, sw = source.shape[:2]
    side = int(rng.uniform(0.2, 1.0) * min(sh, sw))
    y, x = int(rng.integers(0, sh - side + 1)), int(rng.integers(0, sw - side + 1))
    patch = source[y:y + side, x:x + side]
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    patch = cv2.resize(np.ascontiguousarray(patch), (w, h), interpolation=cv2.INTER_AREA)
    return patch.astype(np.float32) / 255.0


def _texture(rng: np.random.Generator, h: int, w: int, backgrounds: list[np.ndarray] | None) -> np.ndarray:
    """(h, w, 3) float image in [0, 1] of one of the texture kinds."""
    if backgrounds and rng.random() < 0.6:
        return _crop(rng, backgrounds[int(rng.integers(len(backgrounds)))], h, w)
    kind = rng.integers(4)
    if kind == 0:
        return _smooth_noise(rng, h, w)
    if kind == 1:
        return _gradient(rng, h, w)
    if kind == 2:
        return _shapes(rng, h, w)
    return np.broadcast_to(rng.uniform(0, 1, 3).astype(np.float32), (h, w, 3)).copy()


def _occluder(rng: np.random.Generator, face: np.ndarray) -> np.ndarray:
    """Soft mask of a rectangle or ellipse covering at most ~30% of the face pixels."""
    h, w = face.shape
    ys, xs = np.nonzero(face)
    mask = np.zeros((h, w), np.float32)
    if len(ys) == 0:
        return mask
    k = int(rng.integers(len(ys)))
    center = (float(xs[k]), float(ys[k]))
    extent = np.sqrt(len(ys))
    for _ in range(6):
        axes = tuple(float(a) for a in rng.uniform(0.15, 0.6, 2) * extent)
        angle = float(rng.uniform(0, 180))
        mask[:] = 0
        if rng.random() < 0.5:
            box = cv2.boxPoints((center, (2 * axes[0], 2 * axes[1]), angle))
            cv2.fillPoly(mask, [np.round(box * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
        else:
            cv2.ellipse(mask, (center, (2 * axes[0], 2 * axes[1]), angle), 1.0, -1, cv2.LINE_AA)
        if (mask[face] > 0.5).mean() <= 0.3:
            return mask
        extent *= 0.7
    return mask


# ------------------------------------------------------------------------ degradations

def _photometric(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Exposure, contrast, gamma, white balance; rarely grey-scale."""
    img = img ** rng.uniform(0.7, 1.5)
    img = (img - 0.5) * rng.uniform(0.7, 1.3) + 0.5 + rng.uniform(-0.15, 0.15)
    img = img * rng.normal(1.0, 0.05, 3).astype(np.float32)
    if rng.random() < 0.05:
        img = np.repeat(img.mean(axis=2, keepdims=True), 3, axis=2)
    return np.clip(img, 0.0, 1.0)


def _blur(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Defocus, motion blur, or a low-resolution source scaled up."""
    r = rng.random()
    if r < 0.25:
        return cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.6))
    if r < 0.4:
        n = int(rng.integers(3, 10))
        k: np.ndarray = np.zeros((n, n), np.float32)
        k[n // 2] = 1.0
        rot = cv2.getRotationMatrix2D(((n - 1) / 2, (n - 1) / 2), rng.uniform(0, 180), 1.0)
        k = cv2.warpAffine(k, rot, (n, n))
        return cv2.filter2D(img, -1, k / k.sum())
    if r < 0.55:
        h, w = img.shape[:2]
        f = rng.uniform(1.5, 3.5)
        small = cv2.resize(img, (max(8, int(w / f)), max(8, int(h / f))),
                           interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return img


def _sensor(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Sensor noise, then 8-bit quantisation and, usually, JPEG re-encoding."""
    if rng.random() < 0.5:
        img = img + rng.normal(0, rng.uniform(0.004, 0.035), img.shape).astype(np.float32)
    out: np.ndarray = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    if rng.random() < 0.7:
        quality = int(rng.integers(20, 96))
        _, buf = cv2.imencode(".jpg", out[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        assert decoded is not None  # our own JPEG bytes
        out = decoded[:, :, ::-1]
    return np.ascontiguousarray(out)


def _compose(result: RenderResult, rng: np.random.Generator,
             backgrounds: list[np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
    """(image, occluder mask): background under the face, occluder over it, degradations."""
    h, w = result.mask.shape
    cov = result.coverage[..., None]
    img = result.image.astype(np.float32) / 255.0 + (1 - cov) * _texture(rng, h, w, backgrounds)
    occ = np.zeros((h, w), np.float32)
    if rng.random() < _P_OCCLUDE:
        occ = _occluder(rng, result.mask)
        tex = _texture(rng, h, w, backgrounds) * rng.uniform(0.4, 1.1)
        img = img * (1 - occ[..., None]) + tex * occ[..., None]
    img = _photometric(rng, np.clip(img, 0.0, 1.0))
    img = _blur(rng, img)
    return _sensor(rng, img), occ > 0.5


def compose(result: RenderResult, rng: np.random.Generator,
            backgrounds: list[np.ndarray] | None = None) -> np.ndarray:
    """Put a render in a random world: textured background (or a crop of one of
    ``backgrounds``, uint8 RGB), a possible occluder, light and camera defects."""
    return _compose(result, rng, backgrounds)[0]


def make_sample(rng: np.random.Generator, model: FaceModel, size: int = 160,
                backgrounds: list[np.ndarray] | None = None,
                expressions: ExpressionSampler | None = None) -> tuple[np.ndarray, dict]:
    """One random training image (uint8 RGB, size²) and its exact labels.

    Labels: alpha (99), eta (29), blendshapes (53, the weights eta was built from), yaw,
    pitch, roll (degrees, AFLW), t (cm, camera frame), focal (pixels; principal point at
    the image centre), landmarks2d (68×2 u, v pixels), landmarks3d (68×3 camera frame, cm),
    visible68 (not self-occluded and in the image), occluded68 (under the random occluder).
    """
    scene, camera = sample_scene(rng, model, size, expressions)
    result = render(model, scene, camera)
    image, occ = _compose(result, rng, backgrounds)
    uv = np.floor(result.landmarks2d).astype(int)
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < size) & (uv[:, 1] >= 0) & (uv[:, 1] < size)
    occluded = np.zeros(68, bool)
    occluded[inside] = occ[uv[inside, 1], uv[inside, 0]]
    labels = dict(
        alpha=scene.alpha, eta=scene.eta, blendshapes=scene.blendshapes,
        yaw=scene.yaw, pitch=scene.pitch, roll=scene.roll, t=np.asarray(scene.t, np.float32),
        focal=float(camera.focal), landmarks2d=result.landmarks2d, landmarks3d=result.landmarks3d,
        visible68=result.visible68, occluded68=occluded,
    )
    return image, labels
