"""What runs the regressor's network on a CPU (``model.runtime``).

An enum of its own, importing nothing, so that the configuration and the sessions can name
the choice without loading torch or ONNX Runtime (the runtimes are workers/onnx_network.py).
"""
from __future__ import annotations

from enum import StrEnum


class Runtime(StrEnum):
    """What runs the regressor's network on a CPU; a GPU always runs torch."""

    AUTO = "auto"                # ONNX Runtime, falling back to torch if the export fails
    ONNXRUNTIME = "onnxruntime"  # ONNX Runtime; a network that does not export is an error
    TORCH = "torch"              # torch eager (batch norm folded, channels-last): the reference
