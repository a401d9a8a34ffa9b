"""The regressor's network run by ONNX Runtime, for CPUs.

Why: on a CPU at the batch sizes live cameras bring (1-8 crops), torch spends most of a
call on per-operator overhead, and its depthwise convolutions (half of MobileNet's layers)
are slow. ONNX Runtime, already here for the detector, runs the same graph at about the
same cost per crop whatever the batch: on one core the replica's whole call reads 1.77×
torch's crops/s at batch 1, 1.44× at 4 and 1.14× at 32, and a camera frame's crop and
regression takes 4-5 ms of CPU instead of 7-8 (``bench/replica_batching.py --compare
runtime:torch``, ``bench/frame_cost.py``; docs/performance.md). The graph is exported
from the loaded torch network at load time, so any checkpoint (a user's own included) runs
so. The export takes a second or two, which a one-image ``facestream predict`` would pay
every time: the exported graph is kept under ``$XDG_CACHE_HOME/facestream/onnx`` (else
``~/.cache``), named by a hash of everything it was made from (the traced forward's code,
every weight, the torch and onnx versions), so a changed network or package can never
read a stale one.

The export traces the network once: the outputs are those of the torch network to about
1e-6 (tested), and a network whose forward depends on its input's values, not only its
shape, would not export faithfully (FaceRegressor's does not).
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from workers.runtime import Runtime

log = logging.getLogger(__name__)

OPSET = 17


class ExportError(RuntimeError):
    """The network could not be exported to ONNX or loaded by ONNX Runtime."""


class OnnxNetwork(nn.Module):
    """Takes and returns what the torch network does (NCHW float crops -> dict of head
    outputs as tensors), so it drops in where the network ran (workers.mirror wraps it)."""

    def __init__(self, model: bytes, threads: int = 1) -> None:
        super().__init__()
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ExportError(f"ONNX Runtime could not load the exported network: {e}") from e
        self._input = self._session.get_inputs()[0].name
        self._outputs = [o.name for o in self._session.get_outputs()]

    @classmethod
    def export(cls, network: nn.Module, size: int, threads: int = 1) -> "OnnxNetwork":
        """``network`` (eval mode, CPU) traced at ``size``-pixel crops with a free batch
        size, and loaded into an ONNX Runtime session of ``threads`` intra-op threads; the
        graph comes from the cache when this very network was exported before."""
        cached = _cache_path(network, size)
        if cached is not None and cached.exists():
            try:
                return cls(cached.read_bytes(), threads)
            except (OSError, ExportError):
                log.warning("ignoring an unreadable cached graph %s", cached)
        graph = _export(network, size)
        if cached is not None:
            _store(cached, graph)
        return cls(graph, threads)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        crops = np.ascontiguousarray(x.detach().float().cpu().numpy())
        outs = self._session.run(self._outputs, {self._input: crops})
        return {k: torch.from_numpy(v) for k, v in zip(self._outputs, outs)}


def _export(network: nn.Module, size: int) -> bytes:
    """The ONNX graph of ``network`` at ``size``-pixel crops, any batch size."""
    example = torch.zeros(2, 3, size, size)
    with torch.no_grad():
        names = list(network(example))
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            # the TorchScript-based exporter is the one that needs no extra packages
            # beyond onnx; torch warns that it is no longer the default
            warnings.simplefilter("ignore")
            # the TorchScript-based exporter writes to a file object too; the stubs name paths only
            torch.onnx.export(network, (example,), buf, dynamo=False, input_names=["crops"],  # type: ignore[arg-type]
                              output_names=names, opset_version=OPSET,
                              dynamic_axes={"crops": {0: "n"}, **{k: {0: "n"} for k in names}})
    except Exception as e:
        raise ExportError(f"the network could not be exported to ONNX: {e}") from e
    return buf.getvalue()


def _cache_path(network: nn.Module, size: int) -> Path | None:
    """Where the graph of ``network`` is cached: a name hashed from the traced forward's
    code, every weight and the versions that make the graph. None (no caching) for a network
    whose forward code is not known (one torch.fx could not trace: the fold failed)."""
    code = getattr(network, "code", None)
    if not isinstance(code, str):
        return None
    from importlib.metadata import version  # the exporter's version, without importing it

    h = hashlib.sha256(f"{torch.__version__}|{version('onnx')}|{OPSET}|{size}|{code}".encode())
    for name, value in network.state_dict().items():
        h.update(f"{name}{tuple(value.shape)}{value.dtype}".encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "facestream" / "onnx" / f"{h.hexdigest()[:32]}.onnx"


def _store(path: Path, graph: bytes) -> None:
    """Write the graph atomically (two replicas may export at once); a cache that cannot be
    written is only slower."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(graph)
        os.replace(tmp, path)
    except OSError as e:
        log.info("the exported graph is not cached (%s)", e)


def for_cpu(network: nn.Module, size: int, runtime: Runtime) -> nn.Module:
    """``network`` as ``runtime`` says a CPU runs it: exported to ONNX Runtime with as many
    threads as torch has (a replica sets one), or unchanged for ``Runtime.TORCH``."""
    if runtime is Runtime.TORCH:
        return network
    try:
        return OnnxNetwork.export(network, size, torch.get_num_threads())
    except ExportError as e:
        if runtime is Runtime.ONNXRUNTIME:
            raise
        log.warning("%s; running it with torch instead (slower on a CPU)", e)
        return network
