"""Regressor throughput by batch size, and the real replica path batched vs batch-1, in one run.

    .venv/bin/python bench/replica_batching.py [--arch resnet101] [--device auto|cpu|cuda]
                                               [--batches 1,2,4,8,16,32,64] [--callers 8,32]
                                               [--runtime auto|onnxruntime|torch]
                                               [--compare CKPT|arch:NAME|runtime:NAME ...] [--json results.json]

Two measurements on the same real face crops (cut with the checkpoint's crop rule from the
photos under ``../shared/data/real/``, or from ``samples/obama.mp4`` when they are absent):

1. **Model alone.** crops/s of exactly what a regressor replica runs per batch
   (uint8 crops to the device, ``to_tensor`` normalisation there, the network, decoding
   to a ``Prediction``) at each batch size, after a warm-up per size, and beside it the
   bare network on an input already on the device (``bare``; ``path/bare`` is the share
   of the network's throughput that the replica's path keeps); fp32 on CPU, bf16 autocast + channels_last on CUDA
   (``workers.regressor.Regressor``). A checkpoint that asks for mirror averaging
   (workers/mirror.py) is timed averaged, as the service reads files' crops; a camera's
   crops, read once, cost what one view does (docs/performance.md). On CUDA it also reports how far bf16 moves pose,
   expression and landmarks from fp32 on the CPU, on the same crops. Sizes are measured round-robin ``--repeats`` times
   and the best round is kept, so background load shifts all sizes alike.
2. **Replica path.** one ``RegressorReplica`` Ray actor (private local Ray) hit by K
   concurrent callers (``--callers``: each K is measured), each sending one frame's crops
   (1 or 2, alternating) and waiting for the answer before sending the next, as a live
   session with one or two faces does; for each K once with ``max_batch_size=1`` and once
   with ``--replica-batch`` (32), ``max_wait_ms`` from ``ray_config.yaml``. Reports crops/s, call latency and the
   batch sizes the replica formed (``RegressorReplica.stats()``, counted over the measured window only). With
   ``max_batch_size=1`` every call is a batch of its own (calls are never split, so a
   2-crop call is a 2-crop batch).

By default the shipped checkpoint is used; ``--arch NAME`` builds an untrained network of
that architecture instead (speed only: its outputs mean nothing), at ``--size`` pixels
(default: the input size the architecture was made for, workers.networks.INPUT_SIZE, e.g.
224 for resnet101 and 120 for mb05, else 128). Torch runs with ``--threads`` intra-op
threads (default 1, as in the replica). Machines here are noisy: compare the ratios, not
the absolute numbers.

**Several models in one run.** ``--compare`` adds models to time beside the first (a
checkpoint path, or ``arch:NAME`` for an untrained network of that architecture at its
input size): a new backbone is judged against today's weights on the same machine under
the same load. Part 1 then measures the models round-robin within every round and batch
size (the order reversed every other round), each on crops cut with its own crop rule,
and prints each model's crops/s and its ratio to the first model per batch size. Part 2
runs for each model in turn (not interleaved: its measurements are seconds long).

**Runtimes.** On a CPU the regressor's network runs on ONNX Runtime (``model.runtime``
auto; workers/onnx_network.py). ``--runtime`` picks the first model's; ``--compare
runtime:torch`` adds the first checkpoint again under another runtime, so ONNX Runtime is
judged against torch in one run::

    .venv/bin/python bench/replica_batching.py --batches 1,4,32 --skip-replica --compare runtime:torch
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

sys.path.insert(0, str(REPO / "bench"))
import numpy as np  # noqa: E402
import torch  # noqa: E402
from machine import machine  # noqa: E402

from workers.runtime import Runtime  # noqa: E402

REAL_MEDIA = REPO.parent / "shared" / "data" / "real"
SAMPLE_VIDEO = REPO / "samples" / "obama.mp4"


# ----------------------------------------------------------------------------- set-up


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: torch sees no CUDA device (is this the CPU wheel of torch?)", file=sys.stderr)
        raise SystemExit(2)
    return device


def prepare_checkpoint(args, tmp: Path) -> tuple[str, str]:
    """(path, description): the given/shipped checkpoint, or an untrained ``--arch`` one."""
    from workers import checkpoint

    if args.arch is None:
        path = args.checkpoint or str(checkpoint.default_path())
        meta = checkpoint.load_meta(path)  # raises CheckpointError with advice if absent
        return path, f"{path} ({meta['architecture']}, trained{_steps(meta)})"
    return untrained_checkpoint(args.arch, args.size, tmp)


def _steps(meta: dict) -> str:
    return f", {meta['steps']} steps" if meta.get("steps") is not None else ""


def prepare_spec(spec: str, tmp: Path, first: tuple[str, str]) -> tuple[str, str]:
    """A ``--compare`` entry: ``arch:NAME`` (untrained, at its input size), ``runtime:NAME``
    (the ``first`` model's checkpoint under that runtime) or a checkpoint path."""
    from workers import checkpoint

    if spec.startswith("runtime:"):
        return first[0], f"{first[1]}, runtime {spec_runtime(spec)}"
    if spec.startswith("arch:"):
        return untrained_checkpoint(spec[len("arch:"):], None, tmp)
    meta = checkpoint.load_meta(spec)
    return spec, f"{spec} ({meta['architecture']}, trained{_steps(meta)})"


def spec_runtime(spec: str, default: str = "auto") -> Runtime:
    """The runtime a ``--compare`` entry names (``runtime:NAME``), else ``default``."""
    return Runtime(spec[len("runtime:"):] if spec.startswith("runtime:") else default)


def untrained_checkpoint(arch: str, size: int | None, tmp: Path) -> tuple[str, str]:
    """An untrained network of ``arch`` saved as a checkpoint: speed only."""
    from workers import checkpoint, face_model
    from workers.crops import CropRule
    from workers.networks import INPUT_SIZE, FaceRegressor

    size = size or INPUT_SIZE.get(arch, 128)
    torch.manual_seed(0)
    model = FaceRegressor(arch).eval()
    meta = {"name": f"bench-untrained-{arch}", "trained": True,  # the loader's gate; speed only
            **CropRule(size=size).to_meta(),
            "face_model": face_model.load().meta()}
    path = checkpoint.save(model, meta, tmp / f"bench-{arch}-{size}")
    params = sum(p.numel() for p in model.parameters()) / 1e6
    return str(path), f"untrained {arch} at {size} px ({params:.1f} M parameters; speed only)"


def real_crops(rule, want: int = 24) -> tuple[np.ndarray, str]:
    """Up to ``want`` distinct uint8 face crops cut with ``rule`` from real media."""
    import cv2

    from streamer.config import DetectorConfig
    from workers.crops import crop_faces
    from workers.detector import FaceDetector

    detector = FaceDetector(DetectorConfig(), threads=1)
    crops: list[np.ndarray] = []
    photos = sorted(REAL_MEDIA.glob("*.jpg")) if REAL_MEDIA.is_dir() else []
    if photos:
        for p in photos:
            image = cv2.imread(str(p))
            if image is None:
                continue
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            crops.extend(crop_faces(image, detector.detect([image])[0].boxes, rule)[0])
        where = f"{len(photos)} photos under {REAL_MEDIA}"
    if len(crops) < want and SAMPLE_VIDEO.exists():
        from streamer.config import SourceConfig
        from streamer.sources.files import open_source

        with open_source(str(SAMPLE_VIDEO), SourceConfig(every=7)) as source:
            for frame in source:
                crops.extend(crop_faces(frame.image, detector.detect([frame.image])[0].boxes, rule)[0])
                if len(crops) >= want:
                    break
        where = (where + " and " if photos else "") + str(SAMPLE_VIDEO.relative_to(REPO))
    if not crops:
        raise SystemExit(f"no face found in {REAL_MEDIA} or {SAMPLE_VIDEO}")
    return np.stack(crops[:want]), where


def batch_of(crops: np.ndarray, n: int, offset: int = 0) -> np.ndarray:
    return np.ascontiguousarray(crops[(np.arange(n) + offset) % len(crops)])


# ------------------------------------------------------------------ 1. the model alone

def _time_calls(run, b: int, seconds: float) -> tuple[int, float]:
    """Calls ``run(b)`` back to back for at least ``seconds`` and two calls: (calls, elapsed s)."""
    calls, t0 = 0, time.perf_counter()
    while True:
        run(b)
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and calls >= 2:
            return calls, elapsed


def bench_models(ckpts: list[str], device: str, crops: list[np.ndarray], batches: list[int],
                 seconds: float, repeats: int, warmup: int, runtimes: list[Runtime]) -> list[list[dict]]:
    """Best-of-``repeats`` crops/s per model and batch size of to_tensor + network + decode.

    Models take turns inside every round and batch size, so a change in background load
    falls on all of them alike; the turn order flips every other round."""
    from workers.crops import CropRule, to_tensor
    from workers.regressor import Regressor

    runners, bare = [], []
    for ckpt, c, rt in zip(ckpts, crops, runtimes):
        regressor = Regressor.load(ckpt, device, runtime=rt)
        rule = CropRule.from_meta(regressor.meta)
        inputs = {b: batch_of(c, b) for b in batches}

        def run(b: int, regressor=regressor, rule=rule, inputs=inputs) -> None:
            pred = regressor(to_tensor(inputs[b], rule, regressor.device))  # decode copies to host: syncs
            assert len(pred) == b

        runners.append(run)
        bare.append(_bare_network(regressor, rule, inputs))

    for run in runners + bare:
        for b in batches:  # first calls at a new shape pick kernels / build primitives
            for _ in range(warmup):
                run(b)
    best = [{b: None for b in batches} for _ in runners]
    best_bare = [{b: 0.0 for b in batches} for _ in runners]
    for r in range(repeats):
        for b in batches:
            order = list(range(len(runners)))
            for m in (order if r % 2 == 0 else order[::-1]):
                calls, elapsed = _time_calls(runners[m], b, seconds)
                rate = calls * b / elapsed
                if best[m][b] is None or rate > best[m][b]["crops_per_s"]:
                    best[m][b] = {"batch": b, "crops_per_s": rate, "ms_per_batch": 1000 * elapsed / calls,
                                  "calls": calls}
                calls, elapsed = _time_calls(bare[m], b, seconds)
                best_bare[m][b] = max(best_bare[m][b], calls * b / elapsed)
    rows = []
    for per, per_bare in zip(best, best_bare):
        base = per[batches[0]]["crops_per_s"]
        for b in batches:
            per[b]["vs_first"] = per[b]["crops_per_s"] / base
            per[b]["bare_crops_per_s"] = per_bare[b]
            per[b]["path_vs_bare"] = per[b]["crops_per_s"] / per_bare[b]
        rows.append([per[b] for b in batches])
    return rows


def _bare_network(regressor, rule, inputs: dict[int, np.ndarray]):
    """The network alone, as the regressor runs it (bf16 autocast on CUDA), on inputs
    normalised and put on the device beforehand; synchronised, so a call is its work."""
    import torch

    from workers.crops import to_tensor

    ready = {b: to_tensor(x, rule, regressor.device).contiguous(memory_format=torch.channels_last)
             for b, x in inputs.items()}
    cuda = regressor.device.type == "cuda"

    @torch.inference_mode()
    def run(b: int) -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            regressor.model(ready[b])
        if cuda:
            torch.cuda.synchronize(regressor.device)

    return run


def bench_model(ckpt: str, device: str, crops: np.ndarray, batches: list[int],
                seconds: float, repeats: int, warmup: int) -> list[dict]:
    """One model: best-of-``repeats`` crops/s per batch size (bench_models)."""
    return bench_models([ckpt], device, [crops], batches, seconds, repeats, warmup, [Runtime.AUTO])[0]


def model_ratios(rows: list[list[dict]]) -> list[dict[int, float]]:
    """Per model and batch size: its crops/s over the first model's."""
    return [{a["batch"]: a["crops_per_s"] / b["crops_per_s"] for a, b in zip(r, rows[0])} for r in rows]


def gpu_agreement(ckpt: str, crops: np.ndarray) -> dict:
    """How far the replica's CUDA path (bf16 autocast, channels_last) moves the outputs from
    fp32 on the CPU, on the same crops: speed is only worth having if the numbers hold."""
    from workers.crops import CropRule, to_tensor
    from workers.regressor import Regressor

    cpu = Regressor.load(ckpt, "cpu")
    x = to_tensor(crops, CropRule.from_meta(cpu.meta))
    a, b = cpu(x), Regressor.load(ckpt, "cuda")(x)
    d_pose = np.abs((a.euler - b.euler + 180) % 360 - 180)
    d_eta = np.abs(a.expression - b.expression)
    return {"pose_deg_mean": float(d_pose.mean()), "pose_deg_max": float(d_pose.max()),
            "eta_mean": float(d_eta.mean()), "eta_max": float(d_eta.max()),
            "eta_label_scale": float(np.abs(a.expression).mean()),
            "landmarks_px_max": float(np.abs(a.landmarks - b.landmarks).max())}


# --------------------------------------------------------------- 2. the replica path

async def _drive(actor, crops: np.ndarray, callers: int, warmup_s: float, seconds: float) -> dict:
    """Callers send 1- or 2-crop calls back to back; counts the measured window only."""
    window = {"on": False, "crops": 0, "calls": 0, "latency": []}
    stop = asyncio.Event()

    async def caller(k: int) -> None:
        i = 0
        while not stop.is_set():
            n = 1 + (k + i) % 2
            frame = batch_of(crops, n, offset=3 * k + i)
            t0 = time.perf_counter()
            pred = await actor.predict.remote(frame)
            if len(pred) != n:
                raise RuntimeError(f"replica returned {len(pred)} predictions for {n} crops")
            if window["on"]:
                window["crops"] += n
                window["calls"] += 1
                window["latency"].append(time.perf_counter() - t0)
            i += 1

    tasks = [asyncio.create_task(caller(k)) for k in range(callers)]
    await asyncio.sleep(warmup_s)
    before = await actor.stats.remote()
    window["on"], t0 = True, time.perf_counter()
    await asyncio.sleep(seconds)
    window["on"], elapsed = False, time.perf_counter() - t0
    after = await actor.stats.remote()
    stop.set()
    await asyncio.gather(*tasks)
    batches = after["batches"] - before["batches"]
    lat = np.array(window["latency"]) * 1000
    return {
        "crops_per_s": window["crops"] / elapsed,
        "calls_per_s": window["calls"] / elapsed,
        "latency_ms_p50": float(np.percentile(lat, 50)) if len(lat) else None,
        "latency_ms_p95": float(np.percentile(lat, 95)) if len(lat) else None,
        "batches": batches,
        "mean_batch": (after["crops"] - before["crops"]) / batches if batches else None,
        "mean_calls_per_batch": (after["requests"] - before["requests"]) / batches if batches else None,
        "largest_batch": after["largest_batch"],  # since the replica started (warm-up included)
        "replica_stats": after,
    }


def bench_replica(ckpt: str, device: str, crops: np.ndarray, max_batch_sizes: list[int],
                  max_wait_ms: float, callers: list[int], warmup_s: float, seconds: float,
                  runtime: Runtime = Runtime.AUTO) -> list[dict]:
    """One fresh replica per (callers, max_batch_size), all in one private local Ray."""
    import ray

    from streamer.pipeline import runtime
    from streamer.pipeline.replicas import RegressorReplica

    rows = []
    gpus = 1 if device == "cuda" else 0
    with runtime.start(num_cpus=2):
        for k in callers:
            for mbs in max_batch_sizes:
                actor = ray.remote(RegressorReplica).options(num_cpus=1, num_gpus=gpus).remote(
                    ckpt, device, mbs, max_wait_ms, runtime=runtime)
                info = ray.get(actor.info.remote())
                result = asyncio.run(_drive(actor, crops, k, warmup_s, seconds))
                ray.kill(actor)
                rows.append({"callers": k, "max_batch_size": mbs, "max_wait_ms": max_wait_ms,
                             "replica_device": info.device, **result})
    return rows


def replica_ratios(rows: list[dict]) -> dict[int, float]:
    """Per number of callers: crops/s of the batched replica over the batch-1 replica."""
    out = {}
    for k in dict.fromkeys(r["callers"] for r in rows):
        one = next(r for r in rows if r["callers"] == k and r["max_batch_size"] == 1)
        batched = next(r for r in rows if r["callers"] == k and r["max_batch_size"] != 1)
        out[k] = batched["crops_per_s"] / one["crops_per_s"]
    return out


# ----------------------------------------------------------------------------- output

def _ints(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return values


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _print_model_rows(rows: list[dict], first: int) -> None:
    print(f"   {'batch':>5}  {'crops/s':>9}  {'ms/batch':>9}  {'ms/crop':>8}  {'vs batch ' + str(first):>11}"
          f"  {'bare':>9}  {'path/bare':>9}")
    for r in rows:
        print(f"   {r['batch']:>5}  {r['crops_per_s']:>9.1f}  {r['ms_per_batch']:>9.2f}  "
              f"{r['ms_per_batch'] / r['batch']:>8.2f}  {r['vs_first']:>10.2f}x"
              f"  {r['bare_crops_per_s']:>9.1f}  {r['path_vs_bare']:>9.2f}")
    peak = max(r["bare_crops_per_s"] for r in rows)
    print(f"   replica path at its best / bare network at its best = "
          f"{max(r['crops_per_s'] for r in rows) / peak:.2f}")
    best = max(rows, key=lambda r: r["crops_per_s"])
    print(f"   ratio: batch {rows[-1]['batch']} / batch {rows[0]['batch']} = "
          f"{rows[-1]['vs_first']:.2f}; fastest is batch {best['batch']}: {best['vs_first']:.2f}")


def _print_replica_rows(rows: list[dict], replica_batch: int) -> None:
    print(f"   {'K':>3}  {'max_batch':>9}  {'crops/s':>9}  {'calls/s':>8}  {'p50 ms':>7}  {'p95 ms':>7}  "
          f"{'batches':>7}  {'mean batch':>10}  {'calls/batch':>11}  {'largest':>7}")
    for r in rows:
        print(f"   {r['callers']:>3}  {r['max_batch_size']:>9}  {r['crops_per_s']:>9.1f}  "
              f"{r['calls_per_s']:>8.1f}  {_fmt(r['latency_ms_p50'], '7.1f')}  "
              f"{_fmt(r['latency_ms_p95'], '7.1f')}  {r['batches']:>7}  {_fmt(r['mean_batch'], '10.1f')}  "
              f"{_fmt(r['mean_calls_per_batch'], '11.1f')}  {r['largest_batch']:>7}")
    for k, ratio in replica_ratios(rows).items():
        print(f"   ratio, {k} callers: max_batch_size {replica_batch} / max_batch_size 1 = {ratio:.2f}")


def _print_setup(host: dict, models: list, rules: list, crops: list, cut: dict, how: str) -> None:
    print(f"machine:    {host['nproc']} cores, {host['cpu']}; GPU: {host['gpu'] or 'none'}; "
          f"torch {host['torch']}; load {host['loadavg'][0]}")
    for i, (_, d) in enumerate(models):
        name = "model:" if len(models) == 1 else f"model {chr(65 + i)}:"
        print(f"{name:<12}{d}; {how}")
    for i, r in enumerate(rules):
        label = "" if len(models) == 1 else f" ({chr(65 + i)})"
        print(f"crops:      {len(crops[i])} real face crops of {r.size} px{label} from {cut[r][1]}")


def _print_model_alone(models: list, all_rows: list[list[dict]], ratios: list[dict[int, float]],
                       batches: list[int]) -> None:
    for i, rows in enumerate(all_rows):
        if len(models) > 1:
            print(f"   model {chr(65 + i)}: {models[i][1]}")
        _print_model_rows(rows, batches[0])
    model_rows = all_rows[0]
    for i, per in enumerate(ratios[1:], 1):
        print(f"   model {chr(65 + i)} / model A, crops/s: " + ", ".join(
            f"batch {b}: {all_rows[i][j]['crops_per_s']:.1f} / {model_rows[j]['crops_per_s']:.1f} = {per[b]:.2f}"
            for j, b in enumerate(batches)))


def _parse_args() -> argparse.Namespace:
    from streamer.config import load_config
    from workers.networks import ARCHS

    config_path = REPO / "ray_config.yaml"
    default_wait = load_config(config_path if config_path.exists() else None).model.max_wait_ms
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="checkpoint to time (default: the shipped one)")
    parser.add_argument("--arch", choices=sorted(ARCHS), help="time an untrained network of this architecture instead")
    parser.add_argument("--size", type=int, help="crop size for --arch (default: its input size, else 128)")
    parser.add_argument("--compare", nargs="+", default=[], metavar="CKPT|arch:NAME|runtime:NAME",
                        help="more models to time beside the first in the same run (round-robin), "
                             "each a checkpoint path, arch:NAME (untrained, at its input size) or "
                             "runtime:NAME (the first checkpoint on that runtime)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--runtime", default="auto", choices=[r.value for r in Runtime],
                        help="what runs the (first) network on a CPU (model.runtime)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads for part 1 (default 1, as in the replica)")
    parser.add_argument("--batches", type=_ints, default=[1, 2, 4, 8, 16, 32, 64], help="batch sizes for part 1")
    parser.add_argument("--seconds", type=float, default=1.5, help="timed seconds per batch size and round")
    parser.add_argument("--repeats", type=int, default=2, help="rounds over the batch sizes; the best is kept")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per batch size first")
    parser.add_argument("--callers", type=_ints, default=[8, 32],
                        help="numbers of concurrent callers of the replica, each measured (part 2)")
    parser.add_argument("--replica-batch", type=int, default=32, help="max_batch_size of the batched replica")
    parser.add_argument("--max-wait-ms", type=float, default=default_wait, help="batch wait (default: ray_config.yaml)")
    parser.add_argument("--replica-seconds", type=float, default=10.0, help="measured seconds per replica setting")
    parser.add_argument("--replica-warmup", type=float, default=3.0, help="seconds of load before measuring")
    parser.add_argument("--skip-replica", action="store_true", help="part 1 only (no Ray)")
    parser.add_argument("--json", metavar="PATH", help="also write the results here as JSON")
    args = parser.parse_args()
    if args.arch and args.checkpoint:
        parser.error("--arch and --checkpoint exclude each other")
    return args


def main() -> int:
    args = _parse_args()
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    host = machine()
    precision = "bf16 autocast + channels_last" if device == "cuda" else "fp32"
    wall0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="facestream-bench-") as tmp:
        from workers.crops import CropRule

        first = prepare_checkpoint(args, Path(tmp))
        models = [first] + [prepare_spec(s, Path(tmp), first) for s in args.compare]
        runtimes = [Runtime(args.runtime)] + [spec_runtime(s) for s in args.compare]
        rules = [CropRule.from_meta(json.loads(Path(c).with_suffix(".json").read_text())) for c, _ in models]
        cut = {}
        for rule in rules:  # one detector pass per distinct crop rule
            if rule not in cut:
                cut[rule] = real_crops(rule)
        crops = [cut[r][0] for r in rules]
        ckpt, described, rule, where = models[0][0], models[0][1], rules[0], cut[rules[0]][1]
        _print_setup(host, models, rules, crops, cut, f"device {device}, {precision}; {args.threads} torch thread(s)")

        both = "" if len(models) == 1 else f", the {len(models)} models round-robin"
        print(f"\n1. model alone: to_tensor + network + decode, best of {args.repeats} rounds "
              f"of >= {args.seconds:g} s per size{both}")
        all_rows = bench_models([c for c, _ in models], device, crops, args.batches, args.seconds,
                                args.repeats, args.warmup, runtimes)
        model_rows = all_rows[0]
        agreement = None
        if device == "cuda":
            if args.arch is None:
                agreement = gpu_agreement(ckpt, crops[0])
            torch.cuda.empty_cache()  # leave the GPU memory to the replica of part 2
        best = max(model_rows, key=lambda r: r["crops_per_s"])
        ratios = model_ratios(all_rows)
        _print_model_alone(models, all_rows, ratios, args.batches)
        if agreement:
            print(f"   bf16 CUDA vs fp32 CPU on the same crops: pose {agreement['pose_deg_mean']:.3f}° mean, "
                  f"{agreement['pose_deg_max']:.3f}° max; eta {agreement['eta_mean']:.4f} mean, "
                  f"{agreement['eta_max']:.4f} max (mean |eta| {agreement['eta_label_scale']:.3f}); "
                  f"landmarks {agreement['landmarks_px_max']:.2f} px max")

        replica_all = [[] for _ in models]
        if not args.skip_replica:
            print(f"\n2. replica path: one RegressorReplica actor, K concurrent callers of 1-2 crops per call, "
                  f"max_wait_ms {args.max_wait_ms:g}, {args.replica_seconds:g} s measured after "
                  f"{args.replica_warmup:g} s of load")
            for i, (c, d) in enumerate(models):
                if len(models) > 1:
                    print(f"   model {chr(65 + i)}: {d}")
                replica_all[i] = bench_replica(c, device, crops[i], [1, args.replica_batch], args.max_wait_ms,
                                               args.callers, args.replica_warmup, args.replica_seconds,
                                               runtimes[i])
                _print_replica_rows(replica_all[i], args.replica_batch)
        replica_rows = replica_all[0]

    wall = time.perf_counter() - wall0
    print(f"\nwall: {wall:.0f} s")
    if args.json:
        result = {
            "benchmark": "replica_batching",
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "machine": host,
            "model": described, "device": device, "precision": precision, "threads": args.threads,
            "crop_size": rule.size, "crops": {"count": int(len(crops[0])), "from": where},
            "model_alone": model_rows,
            "model_ratio_last_vs_first": model_rows[-1]["vs_first"],
            "model_ratio_best_vs_first": best["vs_first"], "model_best_batch": best["batch"],
            "bf16_cuda_vs_fp32_cpu": agreement,
            "replica": replica_rows,
            "replica_ratio_by_callers": {str(k): v for k, v in replica_ratios(replica_rows).items()},
            "wall_s": wall,
            "args": {k: v for k, v in vars(args).items() if k != "json"},
        }
        if len(models) > 1:  # every model, the first included, with its ratio to the first per batch
            result["models"] = [
                {"model": d, "crop_size": r.size, "model_alone": rows,
                 "crops_per_s_vs_first_model": {str(b): v for b, v in per.items()},
                 "replica": rep, "replica_ratio_by_callers": {str(k): v for k, v in replica_ratios(rep).items()}}
                for (_, d), r, rows, per, rep in zip(models, rules, all_rows, ratios, replica_all)]
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"results:    {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
