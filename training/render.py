"""A small CPU renderer of the face model, for synthetic training images with exact labels.

ExpNet-style training needs images whose identity, expression and pose coefficients are
known exactly; rendering the face model itself gives them for free. The renderer is a
vectorised numpy z-buffer rasteriser with Gouraud shading, built for many small images
(about 160 px) on one CPU core, so it has no per-triangle Python loop: all triangles are
cut into pixel rows and the rows into runs of covered pixels at once (at these sizes a
triangle covers a handful of pixels), and the depth test is a scatter-max of 1/depth per
pixel. A 160 px sample, rendered at 2× and averaged down, costs about 30 ms of one core.

Conventions follow ``workers.pose``: camera on +z looking down -z, +y up; a camera-frame
point (X, Y, Z) with Z < 0 lies in front and projects to
    u = cx + f·X/(-Z),   v = cy - f·Y/(-Z)        (u right, v down)
with the principal point (cx, cy) at the image centre. Pixel (row i, column j) covers
[j, j+1) × [i, i+1), so its centre is (j + 0.5, i + 0.5) and ``floor(u), floor(v)`` is
the pixel a landmark falls in.

The model has no mouth socket (the derived model keeps skin, teeth and eyeballs only), so
looking through open lips would show the background; pixels inside the projected inner-lip
polygon that are not teeth, and holes in the head's silhouette near the lips, are painted
as a dark mouth interior instead.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np
import scipy.sparse
import torch

from workers.face_model import FaceModel
from workers.pose import matrix_from_euler

# Source-mesh vertex ranges (ICT-FaceKit README), mapped through vertex_source_ids.
_SKIN_END = 11248
_TEETH = (17039, 21451)
_EYEBALLS = ((21451, 23021), (23021, 24591))

# Pixel labels of RenderResult.part.
BACKGROUND, SKIN, TEETH, EYEBALL, MOUTH = -1, 0, 1, 2, 3

_NEAR_CM = 1.0              # triangles with a corner nearer than this are dropped
_VISIBLE_TOL_CM = 0.35      # slack of the landmark z-buffer test (interpolation error)


@dataclass
class Camera:
    """Pinhole camera with its principal point at the image centre; focal in pixels."""

    width: int
    height: int
    focal: float

    @property
    def center(self) -> tuple[float, float]:
        return self.width / 2.0, self.height / 2.0


@dataclass
class Scene:
    """Everything that decides one rendered face; angles in degrees, lengths in cm.

    The model's vertices are rotated by R = matrix_from_euler(yaw, pitch, roll) about the
    model origin and then translated by ``t`` into the camera frame (t[2] < 0). Light
    direction points from the face toward the light, in the camera frame. Colours are
    display RGB in [0, 1] (no gamma curve is modelled).
    """

    alpha: np.ndarray = field(default_factory=lambda: np.zeros(99, np.float32))
    eta: np.ndarray = field(default_factory=lambda: np.zeros(29, np.float32))
    blendshapes: np.ndarray | None = None   # ARKit weights eta was built from (a label only)
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    t: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, -100.0]))
    ambient: float = 0.45
    ambient_color: np.ndarray = field(default_factory=lambda: np.ones(3))
    diffuse: float = 0.65
    light_dir: np.ndarray = field(default_factory=lambda: np.array([0.3, 0.4, 1.0]))
    light_color: np.ndarray = field(default_factory=lambda: np.ones(3))
    specular: float = 0.08
    shininess: float = 12.0
    skin_albedo: np.ndarray = field(default_factory=lambda: np.array([0.80, 0.60, 0.48]))
    albedo_noise: float = 0.03
    noise_seed: int = 0
    lip_color: np.ndarray = field(default_factory=lambda: np.array([0.62, 0.28, 0.28]))
    lip_strength: float = 0.55
    brow_color: np.ndarray = field(default_factory=lambda: np.array([0.18, 0.12, 0.09]))
    brow_strength: float = 0.75
    socket_darkening: float = 0.25
    hair_color: np.ndarray = field(default_factory=lambda: np.array([0.12, 0.08, 0.06]))
    hair_strength: float = 0.0      # 0 bald ... 1 opaque short hair on the scalp
    hairline: float = 0.0           # cm, raises (+) or lowers (-) the hairline
    iris_color: np.ndarray = field(default_factory=lambda: np.array([0.30, 0.18, 0.10]))
    sclera_color: np.ndarray = field(default_factory=lambda: np.array([0.88, 0.86, 0.82]))
    teeth_color: np.ndarray = field(default_factory=lambda: np.array([0.86, 0.83, 0.74]))
    mouth_color: np.ndarray = field(default_factory=lambda: np.array([0.16, 0.04, 0.04]))

    def rotation(self) -> np.ndarray:
        return matrix_from_euler(self.yaw, self.pitch, self.roll)


@dataclass
class RenderResult:
    """One rendered face over a black background.

    ``image`` is premultiplied by ``coverage`` (edge pixels are part face, part black), so
    compositing over a background B is ``image + (1 - coverage)·B``. ``depth`` is the
    distance along -Z in cm, ``inf`` off the face. ``visible68`` says whether each
    landmark vertex survives the z-buffer test (self-occlusion), and is in the image.
    """

    image: np.ndarray        # (H, W, 3) uint8 RGB
    mask: np.ndarray         # (H, W) bool, face/head pixels (coverage >= 0.5)
    coverage: np.ndarray     # (H, W) float32 in [0, 1], antialiased mask
    depth: np.ndarray        # (H, W) float32 cm
    part: np.ndarray         # (H, W) int8: -1 background, 0 skin, 1 teeth, 2 eyeball, 3 mouth
    landmarks2d: np.ndarray  # (68, 2) float (u, v) pixels
    landmarks3d: np.ndarray  # (68, 3) camera frame, cm
    visible68: np.ndarray    # (68,) bool


@dataclass(frozen=True)
class _Assets:
    """Per-model constants of the renderer, computed once per model (by hash)."""

    faces_t: np.ndarray         # (3, F) int32, corner-major for fast gathers
    teeth: np.ndarray           # vertex ids of the teeth
    eyes: np.ndarray            # vertex ids of both eyeballs
    iris: np.ndarray            # (len(eyes),) 1 inside the iris disc, soft edge
    pupil: np.ndarray           # (len(eyes),)
    lip: np.ndarray             # (N,) skin weights in [0, 1]
    brow: np.ndarray
    socket: np.ndarray
    scalp: np.ndarray           # (N,) cm above the (wavy) default hairline, -inf off skin
    noise: np.ndarray           # (N, K) smooth random fields, mixed per scene
    vertex_to_face: scipy.sparse.csr_matrix   # (F, N); x @ it sums face values onto vertices
    identity: torch.Tensor      # (99, 3N) views of the model's bases, for a fast matvec
    expression: torch.Tensor    # (29, 3N)


_ASSETS: dict[str, _Assets] = {}
_N_NOISE = 12

# A region painter of :func:`_region_map`: it draws on the canvas with ``ToPixels`` (model
# cm -> canvas pixels) at the given pixels per cm.
ToPixels = Callable[[np.ndarray], np.ndarray]
Painter = Callable[[np.ndarray, ToPixels, float], None]


def _assets(model: FaceModel) -> _Assets:
    if model.sha256 not in _ASSETS:
        _ASSETS[model.sha256] = _build_assets(model)
    return _ASSETS[model.sha256]


def _region_map(points_xy: np.ndarray, draw: Painter, blur_cm: float) -> np.ndarray:
    """Soft weights of vertices from a 2D mask drawn in the model's frontal (x, y) plane.

    Painting lips or brows on a frontal picture of the mean face and reading it back at
    each vertex is the cheapest way to a smooth per-vertex weight without a texture.
    """
    res = 20.0  # pixels per cm
    lo = points_xy.min(axis=0) - 1.0
    size = np.ceil((points_xy.max(axis=0) + 1.0 - lo) * res).astype(int)
    canvas = np.zeros((size[1], size[0]), np.float32)
    to_px = lambda p: np.round((np.asarray(p) - lo) * res).astype(np.int32)
    draw(canvas, to_px, res)
    k = int(blur_cm * res) * 2 + 1
    canvas = cv2.GaussianBlur(canvas, (k, k), 0)
    ij = np.clip(to_px(points_xy), 0, size - 1)
    return canvas[ij[:, 1], ij[:, 0]]


def _noise_fields(v: np.ndarray) -> np.ndarray:
    """Fixed random fields over the mean face; a scene mixes them into its skin blotches.

    Plane waves of random direction and wavelength (about 4–20 cm) give smooth, blotchy colour
    changes without a texture; computing them once per model keeps a render cheap.
    """
    rng = np.random.default_rng(0)
    k = rng.normal(size=(3, _N_NOISE)) * rng.uniform(0.3, 1.5, size=_N_NOISE)
    phase = rng.uniform(0, 2 * np.pi, size=_N_NOISE)
    return np.sin(v.astype(np.float64) @ k + phase).astype(np.float32)


def _skin_regions(v: np.ndarray, lm: np.ndarray, skin: np.ndarray) -> tuple[np.ndarray, ...]:
    """Lip, brow and eye-socket weights of the skin vertices, from the mean face."""
    def lips(c: np.ndarray, px: ToPixels, res: float) -> None:
        cv2.fillPoly(c, [px(lm[48:60, :2])], 1.0)

    def brows(c: np.ndarray, px: ToPixels, res: float) -> None:
        for a, b in ((17, 22), (22, 27)):
            cv2.polylines(c, [px(lm[a:b, :2])], False, 1.0, int(0.7 * res))

    def sockets(c: np.ndarray, px: ToPixels, res: float) -> None:
        for a, b in ((36, 42), (42, 48)):
            cv2.polylines(c, [px(lm[a:b, :2])], True, 1.0, int(0.9 * res))
            # a darker line along the upper lid: lashes
            cv2.polylines(c, [px(lm[a:a + 4, :2] + [0, 0.05])], False, 1.0, int(0.25 * res))

    # Only the front layer of skin gets painted: the back of the head shares (x, y).
    front = skin & (v[:, 2] > lm[:, 2].min() - 2.0)
    lip = _region_map(v[:, :2], lips, 0.12) * (front & (v[:, 2] > lm[48:68, 2].min() - 1.5))
    brow = _region_map(v[:, :2], brows, 0.15) * front
    socket = _region_map(v[:, :2], sockets, 0.2) * front
    return lip.astype(np.float32), brow.astype(np.float32), socket.astype(np.float32)


def _build_assets(model: FaceModel) -> _Assets:
    src = model.vertex_source_ids
    v = model.mean
    skin = src < _SKIN_END
    teeth = np.flatnonzero((src >= _TEETH[0]) & (src < _TEETH[1]))
    eyes, iris, pupil = [], [], []
    for a, b in _EYEBALLS:
        sel = np.flatnonzero((src >= a) & (src < b))
        apex = v[sel[np.argmax(v[sel, 2])]]   # the front of the eyeball: the cornea
        r = np.linalg.norm(v[sel] - apex, axis=1)
        eyes.append(sel)
        iris.append(np.clip((0.62 - r) / 0.06, 0, 1))
        pupil.append(np.clip((0.24 - r) / 0.04, 0, 1))
    lip, brow, socket = _skin_regions(v, v[model.landmarks68], skin)
    noise = _noise_fields(v)
    # Hairline: top of the forehead (y 8.3) at the front, sloping to the nape behind.
    line = 8.3 - 0.6 * np.maximum(0.0, 8.0 - v[:, 2]) + 0.5 * noise[:, 0]
    scalp = np.where(skin, v[:, 1] - line, -np.inf).astype(np.float32)

    f = model.faces
    n_f = len(f)
    vertex_to_face = scipy.sparse.csr_matrix(
        (np.ones(3 * n_f, np.float32), (np.tile(np.arange(n_f), 3), f.T.ravel())),
        shape=(n_f, len(v)))
    return _Assets(
        faces_t=np.ascontiguousarray(f.T, dtype=np.int32), teeth=teeth,
        eyes=np.concatenate(eyes), iris=np.concatenate(iris).astype(np.float32),
        pupil=np.concatenate(pupil).astype(np.float32), lip=lip, brow=brow, socket=socket,
        scalp=scalp, noise=noise, vertex_to_face=vertex_to_face,
        identity=torch.from_numpy(model.identity).reshape(model.identity.shape[0], -1),
        expression=torch.from_numpy(model.expression).reshape(model.expression.shape[0], -1))


def _vertices(model: FaceModel, scene: Scene, assets: _Assets) -> np.ndarray:
    """S' = mean + S·alpha + E·eta; torch's matvec is several times faster than numpy's here."""
    alpha = torch.as_tensor(np.asarray(scene.alpha, np.float32))
    eta = torch.as_tensor(np.asarray(scene.eta, np.float32))
    offset = alpha @ assets.identity + eta @ assets.expression
    return model.mean + offset.numpy().reshape(-1, 3)


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / (np.sqrt(np.einsum("ij,ij->i", x, x))[:, None] + 1e-12)


def _vertex_normals(v: np.ndarray, assets: _Assets) -> np.ndarray:
    """Area-weighted vertex normals of the deformed mesh (outward: the source winding)."""
    x, y, z = (np.take(c, assets.faces_t) for c in np.ascontiguousarray(v.T))   # (3, F) each
    ax, ay, az = x[1] - x[0], y[1] - y[0], z[1] - z[0]
    bx, by, bz = x[2] - x[0], y[2] - y[0], z[2] - z[0]
    fn = np.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx])   # (3, F)
    return _normalize(np.ascontiguousarray((fn @ assets.vertex_to_face).T))


def _albedo(scene: Scene, assets: _Assets) -> np.ndarray:
    """Per-vertex RGB albedo: skin with lips, brows, eye sockets and hair; teeth; eyes."""
    rng = np.random.default_rng(scene.noise_seed)
    f32 = lambda x: np.asarray(x, np.float32)
    # Skin blotches (a random mix of the smooth fields) plus fine grain, tinted per channel.
    mix = f32(rng.normal(size=_N_NOISE) / np.sqrt(_N_NOISE / 2))
    noise = assets.noise @ mix + f32(rng.normal(size=len(assets.lip))) * np.float32(0.35)
    tint = f32(rng.uniform(0.6, 1.0, size=3) * scene.albedo_noise)
    skin = f32(scene.skin_albedo) * np.clip(1.0 + noise[:, None] * tint, 0.0, 2.0)
    skin *= 1.0 + (scene.lip_strength * assets.lip)[:, None] * (1.6 * f32(scene.lip_color) - 1.0)
    skin *= (1.0 - scene.socket_darkening * assets.socket)[:, None]
    brow = (scene.brow_strength * assets.brow)[:, None]
    skin += brow * (f32(scene.brow_color) - skin)
    hair = scene.hair_strength * np.clip((assets.scalp - scene.hairline) / 0.7 + 0.5, 0.0, 1.0)
    skin += hair[:, None] * (f32(scene.hair_color) - skin)

    iris, pupil = assets.iris[:, None], assets.pupil[:, None]
    eye = f32(scene.sclera_color) * (1 - iris) + f32(scene.iris_color) * iris
    skin[assets.eyes] = eye * (1 - pupil) + 0.03 * pupil
    skin[assets.teeth] = f32(scene.teeth_color)
    return np.clip(skin, 0.0, 1.0)


def _shade(v_cam: np.ndarray, normals: np.ndarray, albedo: np.ndarray, scene: Scene) -> np.ndarray:
    """Lambert + ambient + Blinn-Phong highlight, per vertex (Gouraud)."""
    light = np.asarray(scene.light_dir, np.float64)
    light = (light / np.linalg.norm(light)).astype(np.float32)
    lc = np.asarray(scene.light_color, np.float32)
    n_dot_l = np.maximum(normals @ light, 0.0)
    half = _normalize(light - _normalize(v_cam))
    spec = np.maximum(np.einsum("ij,ij->i", normals, half), 0.0) ** np.float32(scene.shininess)
    spec *= np.float32(scene.specular) * (n_dot_l > 0)
    lit = np.float32(scene.ambient) * np.asarray(scene.ambient_color, np.float32) \
        + (np.float32(scene.diffuse) * n_dot_l)[:, None] * lc
    return albedo * lit + spec[:, None] * lc


def project(points_cam: np.ndarray, camera: Camera) -> np.ndarray:
    """(u, v) pixel coordinates of camera-frame points (Z < 0 in front)."""
    cx, cy = camera.center
    w = -points_cam[:, 2]
    return np.stack([cx + camera.focal * points_cam[:, 0] / w,
                     cy - camera.focal * points_cam[:, 1] / w], axis=1)


@dataclass
class Raster:
    """Per-pixel result of ``rasterize`` (flattened H·W arrays)."""

    face: np.ndarray    # (H·W,) int32 triangle id, -1 empty
    w1: np.ndarray      # (H·W,) float32 barycentric weight of corner 1
    w2: np.ndarray      # (H·W,) float32 barycentric weight of corner 2
    depth: np.ndarray   # (H·W,) float32 cm, inf empty


def _spans(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interval of dx where all three barycentrics p_i·dx + q_i are >= 0 (rows of a scan).

    An edge parallel to the row (p = 0) puts no bound on dx; it empties the row if q < 0.
    """
    parallel = p == 0
    with np.errstate(over="ignore"):
        bound = -q / np.where(parallel, np.float32(1), p)
    inf = np.float32(np.inf)
    lo = np.where(p > 0, bound, np.where(parallel & (q < 0), inf, -inf)).max(axis=0)
    hi = np.where(p < 0, bound, inf).min(axis=0)
    return lo, hi


def rasterize(uv: np.ndarray, depth: np.ndarray, faces: np.ndarray,
              width: int, height: int) -> Raster:
    """Z-buffer rasterisation of front-facing triangles, all triangles at once.

    A vectorised scanline rasteriser: each triangle is cut into the pixel rows its
    bounding box spans, each row into the exact run of pixel centres inside the triangle
    (from its three edge equations), so almost no candidate pixel is wasted. Barycentrics
    and 1/depth (exact under perspective) are linear along a run; a scatter-max of
    1/depth per pixel then keeps the nearest fragment.
    """
    n_pix = width * height
    out = Raster(face=np.full(n_pix, -1, np.int32), w1=np.zeros(n_pix, np.float32),
                 w2=np.zeros(n_pix, np.float32), depth=np.full(n_pix, np.inf, np.float32))
    fu = np.take(uv[:, 0].astype(np.float32), faces.T)    # (3, F)
    fv = np.take(uv[:, 1].astype(np.float32), faces.T)
    e1u, e1v = fu[1] - fu[0], fv[1] - fv[0]
    e2u, e2v = fu[2] - fu[0], fv[2] - fv[0]
    area = e1u * e2v - e2u * e1v
    umin = np.maximum(np.ceil(fu.min(axis=0) - 0.5), 0)
    umax = np.minimum(np.floor(fu.max(axis=0) - 0.5), width - 1)
    vmin = np.maximum(np.ceil(fv.min(axis=0) - 0.5), 0)
    vmax = np.minimum(np.floor(fv.max(axis=0) - 0.5), height - 1)
    # Front faces wind clockwise in (u, v) since v points down: negative signed area.
    ok = (area < -1e-9) & (umax >= umin) & (vmax >= vmin)
    if depth.min() <= _NEAR_CM:
        ok &= np.take(depth, faces.T).min(axis=0) > _NEAR_CM
    keep = np.flatnonzero(ok)
    if keep.size == 0:
        return out

    # Per triangle: w1 = k1u·dx + k1v·dy, w2 = k2u·dx + k2v·dy with (dx, dy) from corner 0.
    inv_a = 1.0 / area[keep]
    k1u, k1v = e2v[keep] * inv_a, -e2u[keep] * inv_a
    k2u, k2v = -e1v[keep] * inv_a, e1u[keep] * inv_a
    iz = 1.0 / np.take(depth.astype(np.float32), faces.T[:, keep])

    # Rows: one per (triangle, pixel row of its bounding box).
    rows_per = (vmax[keep] - vmin[keep] + 1).astype(np.int64)
    tri = np.repeat(np.arange(keep.size), rows_per)
    rep = lambda x: np.repeat(x, rows_per)
    first_row = (np.cumsum(rows_per) - rows_per).astype(np.float32)
    y = np.arange(tri.size, dtype=np.float32) - rep(first_row - vmin[keep])
    dy = y + rep(0.5 - fv[0, keep])
    p1, p2 = rep(k1u), rep(k2u)
    q1, q2 = rep(k1v) * dy, rep(k2v) * dy
    lo, hi = _spans(np.stack([-(p1 + p2), p1, p2]), np.stack([1 - q1 - q2, q1, q2]))
    u0 = rep(fu[0, keep])
    # Clamped to the bounding box: slivers have ill-conditioned edge equations.
    j0 = np.maximum(np.ceil(u0 + lo - 0.5 - 1e-4), rep(umin[keep]))
    j1 = np.minimum(np.floor(u0 + hi - 0.5 + 1e-4), rep(umax[keep]))
    run = np.maximum(j1 - j0 + 1, 0).astype(np.int64)

    # Fragments: the pixels of each run; everything is linear in the offset along it.
    dx0 = j0 + 0.5 - u0
    w1s, w2s = p1 * dx0 + q1, p2 * dx0 + q2
    iz0, iz1, iz2 = rep(iz[0]), rep(iz[1] - iz[0]), rep(iz[2] - iz[0])
    izs, izd = iz0 + iz1 * w1s + iz2 * w2s, iz1 * p1 + iz2 * p2
    frag = lambda x: np.repeat(x, run)
    start = np.cumsum(run) - run
    o = (np.arange(int(run.sum())) - frag(start)).astype(np.float32)
    w1 = frag(w1s) + frag(p1) * o
    w2 = frag(w2s) + frag(p2) * o
    # float32 throughout: the winner test below compares against the float32 buffer.
    inv_z = (frag(izs) + frag(izd) * o).astype(np.float32, copy=False)
    pix = np.arange(o.size) + frag((y * width + j0).astype(np.int64) - start)

    best = np.zeros(n_pix, np.float32)
    np.maximum.at(best, pix, inv_z)
    win = np.flatnonzero(inv_z == best[pix])
    pw = pix[win]
    out.face[pw] = frag(keep[tri])[win]
    out.w1[pw] = np.clip(w1[win], 0, 1)
    out.w2[pw] = np.clip(w2[win], 0, 1)
    hit = out.face >= 0
    out.depth[hit] = 1.0 / best[hit]
    return out


def _interpolate(values: np.ndarray, faces_t: np.ndarray,
                 r: Raster) -> tuple[np.ndarray, np.ndarray]:
    """Barycentric interpolation of per-vertex (N, C) values at the covered pixels."""
    hit = np.flatnonzero(r.face >= 0)
    fid = r.face[hit]
    c0, c1, c2 = (np.take(values, np.take(faces_t[k], fid), axis=0) for k in range(3))
    c1 -= c0
    c2 -= c0
    c1 *= r.w1[hit, None]
    c2 *= r.w2[hit, None]
    c0 += c1
    c0 += c2
    return hit, c0


def _mouth_interior(part: np.ndarray, lm_uv: np.ndarray) -> np.ndarray:
    """Pixels that look into the (unmodelled) mouth, teeth excepted: inside the inner-lip
    polygon, or in a hole of the head's silhouette near the lips (through open lips the
    culled inside of the head leaves such holes)."""
    h, w = part.shape
    poly = np.zeros((h, w), np.uint8)
    inner, outer = lm_uv[60:68], lm_uv[48:60]
    cv2.fillPoly(poly, [np.round(inner * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    covered = np.pad((part >= 0).astype(np.uint8), 1)
    cv2.floodFill(covered, None, (0, 0), 2)
    holes = covered[1:-1, 1:-1] == 0
    lo, hi = outer.min(axis=0), outer.max(axis=0)
    lo, hi = np.floor(lo - 0.5 * (hi - lo)).astype(int), np.ceil(hi + 0.5 * (hi - lo)).astype(int)
    near_lips = np.zeros((h, w), bool)
    near_lips[max(lo[1], 0):max(hi[1], 0), max(lo[0], 0):max(hi[0], 0)] = True
    return ((poly > 0) | (holes & near_lips)) & (part != TEETH)


def render(model: FaceModel, scene: Scene, camera: Camera, supersample: int = 2) -> RenderResult:
    """Render ``model`` posed and lit by ``scene`` through ``camera``.

    ``supersample`` renders at that many times the resolution and averages blocks down,
    which antialiases silhouettes and the thin features (lids, lips) that decide how
    realistic a 160 px face looks.
    """
    assets = _assets(model)
    s = int(supersample)
    v_model = _vertices(model, scene, assets)
    R = scene.rotation().astype(np.float32)
    v_cam = v_model @ R.T + np.asarray(scene.t, np.float32)
    colors = _shade(v_cam, _vertex_normals(v_cam, assets), _albedo(scene, assets), scene)

    big = Camera(camera.width * s, camera.height * s, camera.focal * s)
    uv = project(v_cam, big)
    depth = -v_cam[:, 2]
    r = rasterize(uv, depth, model.faces, big.width, big.height)

    hb, wb = big.height, big.width
    img: np.ndarray = np.zeros((hb * wb, 3), np.float32)
    hit, val = _interpolate(colors, assets.faces_t, r)
    img[hit] = val
    part: np.ndarray = np.full(hb * wb, BACKGROUND, np.int8)
    part[hit] = model.face_part[r.face[hit]]
    part = part.reshape(hb, wb)
    img = img.reshape(hb, wb, 3)
    zbuf = r.depth.reshape(hb, wb)

    lm = model.landmarks68
    mouth = _mouth_interior(part, uv[lm])
    part[mouth] = MOUTH
    img[mouth] = np.asarray(scene.mouth_color, np.float32)
    zbuf[mouth & ~np.isfinite(zbuf)] = depth[lm[60:68]].mean()

    lm2d = uv[lm] / s
    lm3d = v_cam[lm]
    visible = _landmark_visibility(uv[lm], depth[lm], zbuf)
    return _downsample(img, part, zbuf, s, lm2d, lm3d, visible)


def _landmark_visibility(uv: np.ndarray, depth: np.ndarray, zbuf: np.ndarray) -> np.ndarray:
    """A landmark is visible when its vertex is (nearly) the nearest surface near its pixel.

    The farthest surface in the 3×3 neighbourhood is the reference: on a surface seen at a
    grazing angle (the jaw line, a turned cheek) depth changes by more than the tolerance
    from one pixel to the next, so the landmark's own pixel alone would call it hidden.
    """
    h, w = zbuf.shape
    j = np.floor(uv[:, 0]).astype(int)
    i = np.floor(uv[:, 1]).astype(int)
    inside = (j >= 0) & (j < w) & (i >= 0) & (i < h) & (depth > _NEAR_CM)
    ii, jj = i[inside], j[inside]
    far = np.full(ii.shape, -np.inf, np.float32)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            z = zbuf[np.clip(ii + di, 0, h - 1), np.clip(jj + dj, 0, w - 1)]
            far = np.maximum(far, np.where(np.isfinite(z), z, -np.inf))
    vis = np.zeros(len(uv), bool)
    vis[inside] = depth[inside] <= far + _VISIBLE_TOL_CM
    return vis


def _block_mean(x: np.ndarray, s: int) -> np.ndarray:
    """Mean over s×s blocks (cv2's area resize is exact for an integer factor, and fast)."""
    if s == 1:
        return x
    h, w = x.shape[0] // s, x.shape[1] // s
    return cv2.resize(x, (w, h), interpolation=cv2.INTER_AREA)


def _downsample(img: np.ndarray, part: np.ndarray, zbuf: np.ndarray, s: int, lm2d: np.ndarray, lm3d: np.ndarray,
                visible: np.ndarray) -> RenderResult:
    """Average s×s blocks: colour and coverage by area, depth as the nearest sample."""
    cov = _block_mean((part >= 0).astype(np.float32), s)
    image = _block_mean(img, s)
    depth = zbuf[::s, ::s].copy()
    for di in range(s):
        for dj in range(s):
            np.minimum(depth, zbuf[di::s, dj::s], out=depth)
    mask = cov >= 0.5
    depth[~mask] = np.inf
    # A block's label is its most common non-background label.
    share = np.stack([_block_mean((part == k).astype(np.float32), s)
                      for k in (SKIN, TEETH, EYEBALL, MOUTH)], axis=2)
    labels = np.where(mask, share.argmax(axis=2), BACKGROUND).astype(np.int8)
    return RenderResult(
        image=np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8), mask=mask,
        coverage=cov, depth=depth, part=labels, landmarks2d=lm2d.astype(np.float32),
        landmarks3d=lm3d.astype(np.float32), visible68=visible)
