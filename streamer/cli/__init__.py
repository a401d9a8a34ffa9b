"""The ``facestream`` command.

Subcommands: ``analyze`` (a video through the whole pipeline), ``predict`` (images,
in-process, no Ray), ``report`` (HTML plots of an output dir), ``face-model`` (build the
derived face model); the service: ``serve``, and its clients ``submit``, ``streams``,
``stop``, ``restart``, ``tail``, ``events``; ``publish`` (a file as a live RTSP/HTTP
stream, to try things on). This is the only place that prints; library code reports
through return values, exceptions and injected callbacks.

A user's mistake ends with one line on stderr and a distinct exit status, never a
traceback; an internal error prints one line naming a log file that holds the traceback.

The package by role: :mod:`~streamer.cli.parser` (every command, flag and help text),
:mod:`~streamer.cli.errors` (exit statuses and which errors are a user's mistake),
:mod:`~streamer.cli.progress` (the bars on stderr), and one module per group of commands:
:mod:`~streamer.cli.analyze` (``analyze``, ``report``), :mod:`~streamer.cli.predict`,
:mod:`~streamer.cli.face_model`, :mod:`~streamer.cli.serve`, :mod:`~streamer.cli.clients`
(``submit``, ``streams``, ``stop``, ``tail``, ``events``), :mod:`~streamer.cli.publish`. Each imports
only the standard library at its top, the rest where it is used, so a mistyped command
answers before Ray, torch or FFmpeg are loaded.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from streamer.cli.analyze import analyze_command, report_command
from streamer.cli.clients import (
    events_command,
    restart_command,
    stop_command,
    streams_command,
    submit_command,
    tail_command,
)
from streamer.cli.errors import exit_code
from streamer.cli.face_model import face_model_command
from streamer.cli.parser import build_parser
from streamer.cli.predict import predict_command
from streamer.cli.publish import publish_command
from streamer.cli.serve import serve_command


def _plugin(args) -> int:
    """``train`` and ``evaluate`` live in the training layer, above everything served: they
    are found through the ``facestream.commands`` entry points, never imported from here."""
    from importlib.metadata import entry_points

    found = entry_points(group="facestream.commands", name=args.command)
    if not found:
        raise SystemExit(f"facestream {args.command}: the training layer is not installed (pip install -e .)")
    next(iter(found)).load()(args.args)
    return 0


_COMMANDS = {"analyze": analyze_command, "predict": predict_command, "report": report_command,
             "face-model": face_model_command, "train": _plugin, "evaluate": _plugin, "serve": serve_command,
             "submit": submit_command, "streams": streams_command, "stop": stop_command, "restart": restart_command,
             "tail": tail_command, "events": events_command, "publish": publish_command}


def _log_internal_error(error: BaseException) -> Path:
    log = Path(tempfile.gettempdir()) / f"facestream-error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    log.write_text(f"facestream {' '.join(sys.argv[1:])}\n\n"
                   + "".join(traceback.format_exception(error)))
    return log


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] in (["train"], ["evaluate"]):  # their flags are their own (argparse's
            return _plugin(argparse.Namespace(command=argv[0], args=argv[1:]))  # REMAINDER drops them)
        args = build_parser().parse_args(argv)
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("facestream: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `facestream tail ID | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:  # the one place that turns errors into messages
        code = exit_code(error)
        if code is not None:
            print(f"facestream: error: {_one_line(error)}", file=sys.stderr)
            return code
        log = _log_internal_error(error)
        print(f"facestream: internal error: {type(error).__name__}: {_one_line(error)} (traceback in {log})",
              file=sys.stderr)
        return 1
