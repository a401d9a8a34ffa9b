"""The shipped weights, through `facestream predict`, on renders with known pose and on a
real photo: the printed angles carry AFLW2000-3D's signs (DESIGN.md) and sensible sizes."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from streamer.cli import main
from training.render import Camera, Scene, render
from workers import checkpoint, face_model


def _predict(capsys, paths):
    assert main(["predict", "--json", *map(str, paths)]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    fm = face_model.load()
    out = tmp_path_factory.mktemp("renders")
    rng = np.random.default_rng(3)
    poses = [(35, 0, 0), (-35, 0, 0), (0, 25, 0), (0, -25, 0), (0, 0, 25), (0, 0, -25)]
    paths = []
    for k, (y, p, r) in enumerate(poses):
        bg = rng.uniform(60, 200, 3).astype(np.uint8)
        img = render(fm, Scene(yaw=y, pitch=p, roll=r, t=np.array([0.0, 0.0, -80.0])), Camera(256, 256, 700.0))
        a = img.coverage[..., None]
        pic = (img.image + (1 - a) * bg).astype(np.uint8)
        paths.append(out / f"pose{k}.png")
        Image.fromarray(pic).save(paths[-1])
    return paths, poses


def _render_png(fm, path, blend: dict, background, yaw=0.0):
    w = np.zeros(len(fm.blend_names), np.float32)
    for name, value in blend.items():
        w[fm.blend_names.index(name)] = value
    img = render(fm, Scene(eta=fm.eta_from_blendshapes(w), yaw=yaw, t=np.array([0.0, 0.0, -80.0])),
                 Camera(256, 256, 700.0))
    a = img.coverage[..., None]
    Image.fromarray((img.image + (1 - a) * background).astype(np.uint8)).save(path)
    return path


def test_predict_reads_jaw_opening_and_smiles_on_renders(capsys, tmp_path):
    """Expression, not just pose: the same face neutral, with the jaw open and smiling,
    at three yaws; the readable blendshapes must order the images as the truth does."""
    fm = face_model.load()
    rng = np.random.default_rng(4)
    cases = {"neutral": {}, "jaw": {"jawOpen": 0.8}, "smile": {"mouthSmile_L": 0.9, "mouthSmile_R": 0.9}}
    paths = {}
    for yaw in (-20.0, 0.0, 20.0):
        bg = rng.uniform(60, 200, 3)
        for name, blend in cases.items():
            paths[name, yaw] = _render_png(fm, tmp_path / f"{name}{yaw:+.0f}.png", blend, bg, yaw)
    faces = {f["image"]: f["blendshapes"] for f in _predict(capsys, list(paths.values()))}
    for yaw in (-20.0, 0.0, 20.0):
        got = {name: faces[str(paths[name, yaw])] for name in cases}
        smile = {k: (b["mouthSmile_L"] + b["mouthSmile_R"]) / 2 for k, b in got.items()}
        print(yaw, {k: round(b["jawOpen"], 2) for k, b in got.items()}, {k: round(v, 2) for k, v in smile.items()})
        assert got["jaw"]["jawOpen"] > got["neutral"]["jawOpen"] + 0.4, (yaw, got)
        assert got["neutral"]["jawOpen"] < 0.3 and smile["neutral"] < 0.3, (yaw, got)
        assert smile["smile"] > smile["neutral"] + 0.4, (yaw, smile)


def test_shipped_checkpoint_is_trained_and_documented():
    meta = checkpoint.load_meta(checkpoint.default_path())
    assert meta["trained"] and meta["face_model"]["sha256"] == face_model.load().sha256
    assert meta["training"]["command"].startswith("facestream train")
    assert meta["evaluation"]


def test_predict_signs_on_renders(capsys, renders):
    paths, poses = renders
    faces = _predict(capsys, paths)
    by_image = {f["image"]: f for f in faces}
    errors = []
    for path, truth in zip(paths, poses):
        f = by_image[str(path)]["pose"]
        got = np.array([f["yaw"], f["pitch"], f["roll"]])
        axis = int(np.argmax(np.abs(truth)))
        assert np.sign(got[axis]) == np.sign(truth[axis]), (path.name, got, truth)
        errors.append(abs(got[axis] - truth[axis]))
        print(path.name, truth, got.round(1))
        assert abs(got[axis]) > 5, (path.name, got, truth)          # clearly turned, not frontal
    # plain renders without background texture are off the training distribution; the
    # documented render MAE (docs/accuracy.md) is measured on randomised ones
    assert np.mean(errors) < 12, errors


def test_predict_on_a_real_photo(capsys):
    photo = face_model.REPO_ROOT.parent / "shared" / "data" / "real" / "obama-720p.jpg"
    faces = _predict(capsys, [photo])
    assert len(faces) == 1
    f = faces[0]
    assert len(f["expression"]) == 29 and len(f["shape"]) == 99
    assert all(abs(f["pose"][k]) < 15 for k in ("yaw", "pitch", "roll"))  # a frontal portrait
    smile = (f["blendshapes"]["mouthSmile_L"] + f["blendshapes"]["mouthSmile_R"]) / 2
    assert smile > 0.3, f["blendshapes"]                                   # he is smiling


def test_shipped_alpha_tells_real_people_apart(capsys, tmp_path):
    """Identity alpha (training/identity_branch.py) on frames of four people the network was
    not trained on: each person's faces are nearer one another than to anyone else's."""
    import av

    clips = ("vr_1", "vr_4", "st_wda_kh", "lp_s32")
    paths, who = [], []
    for name in clips:
        with av.open(str(face_model.REPO_ROOT.parent / "shared" / "data" / "real" / "video" / f"{name}.mp4")) as f:
            frames = [fr.to_ndarray(format="rgb24") for i, fr in zip(range(120), f.decode(video=0)) if i % 30 == 0]
        for k, frame in enumerate(frames):
            paths.append(tmp_path / f"{name}_{k}.png")
            Image.fromarray(frame).save(paths[-1])
            who.append(name)
    faces = {f["image"]: np.asarray(f["shape"]) for f in _predict(capsys, paths)}
    alpha = np.stack([faces[str(p)] for p in paths])
    alpha /= np.linalg.norm(alpha, axis=1, keepdims=True)
    d = 1 - alpha @ alpha.T
    who_a = np.array(who)
    within, across = [], []
    for name in clips:
        mine = who_a == name
        within.append(d[np.ix_(mine, mine)][np.triu_indices(mine.sum(), 1)].mean())
        across.append(d[np.ix_(mine, ~mine)].mean())
    # measured 0.04-0.15 within, 0.18-0.20 across; the alpha before the refit put vr_4's own
    # faces farther apart (0.84) than from the others (0.75)
    assert all(w < a for w, a in zip(within, across)), (within, across)
    assert np.mean(within) < 0.65 * np.mean(across), (within, across)


def test_shipped_alpha_tells_photos_of_one_person_years_apart_from_other_people(capsys):
    """Identity alpha on ``../shared/data/identity`` (web photos of people never trained on,
    taken years and lighting apart; 300 labelled pairs): the verification AUC of alpha's
    cosine distance, the largest face of each photo."""
    root = face_model.REPO_ROOT.parent / "shared" / "data" / "identity"
    rows = [line.split(",") for line in (root / "pairs.csv").read_text().split()[1:]]
    names = sorted({n for a, b, _ in rows for n in (a, b)})
    largest: dict[str, tuple[float, np.ndarray]] = {}
    for f in _predict(capsys, [root / "images" / n for n in names]):
        x1, y1, x2, y2 = f["box"]
        name = Path(f["image"]).name
        if (x2 - x1) * (y2 - y1) > largest.get(name, (0.0, None))[0]:
            largest[name] = ((x2 - x1) * (y2 - y1), np.asarray(f["shape"]) / np.linalg.norm(f["shape"]))
    assert set(largest) == set(names)
    d = np.array([1 - largest[a][1] @ largest[b][1] for a, b, _ in rows])
    same = np.array([int(s) for *_, s in rows]) == 1
    auc = (d[same][:, None] < d[~same][None, :]).mean() + 0.5 * (d[same][:, None] == d[~same][None, :]).mean()
    # measured 0.941; the linear read-out of the trunk before the branch gave 0.84 by the same measure
    assert auc > 0.9, auc
