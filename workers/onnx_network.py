"""The regressor's network run by ONNX Runtime, for CPUs.

Why: on a CPU at the batch sizes live cameras bring (1-8 crops), torch spends most of a
call on per-operator overhead, and its depthwise convolutions (half of MobileNet's layers)
are slow. ONNX Runtime, already here for the detector, runs the same graph at about the
same cost per crop whatever the batch: on one core the replica's whole call reads 1.77×
torch's crops/s at batch 1, 1.44× at 4 and 1.14× at 32, and a camera frame's crop and
regression takes 4-5 ms of CPU instead of 7-8 (``bench/replica_batching.py --compare
runtime:torch``, ``bench/frame_cost.py``; docs/performance.md). The graph is exported
from the loaded torch network in memory, at load time, so any checkpoint (a user's own
included) runs so, and nothing is kept on disk that could fall out of step with the
weights.

The export traces the network once: the outputs are those of the torch network to about
1e-6 (tested), and a network whose forward depends on its input's values, not only its
shape, would not export faithfully (FaceRegressor's does not).
"""
from __future__ import annotations

import io
import logging
import warnings

import numpy as np
import torch
from torch import nn

from workers.runtime import Runtime

log = logging.getLogger(__name__)


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
        size, and loaded into an ONNX Runtime session of ``threads`` intra-op threads."""
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
                                  output_names=names, opset_version=17,
                                  dynamic_axes={"crops": {0: "n"}, **{k: {0: "n"} for k in names}})
        except Exception as e:
            raise ExportError(f"the network could not be exported to ONNX: {e}") from e
        return cls(buf.getvalue(), threads)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        crops = np.ascontiguousarray(x.detach().float().cpu().numpy())
        outs = self._session.run(self._outputs, {self._input: crops})
        return {k: torch.from_numpy(v) for k, v in zip(self._outputs, outs)}


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
