"""Which errors are a user's mistake, and the exit status each gets (streamer.cli.errors).

The table names exception classes by module and name, so that the command's start-up
imports none of them: a class that moves to another module would silently turn a user's
mistake into an "internal error" with a traceback file. These tests hold the table to the
code (tests/streamer/test_cli.py runs the commands themselves).
"""
from __future__ import annotations

import importlib

import pytest

from streamer.cli.errors import _USER_ERRORS, EXIT_CODES, UserError, exit_code


def _classes() -> list[tuple[type[BaseException], int]]:
    return [(getattr(importlib.import_module(module), name), code) for module, name, code in _USER_ERRORS]


def test_every_entry_names_an_exception_class_where_it_lives():
    for (module, name, _), (kind, _) in zip(_USER_ERRORS, _classes()):
        assert isinstance(kind, type) and issubclass(kind, BaseException), f"{module}.{name}"


def test_a_subclass_comes_before_its_base_class():
    """The first match wins, so a later entry that subclasses an earlier one never applies."""
    classes = _classes()
    shadowed = [(later.__name__, earlier.__name__) for i, (earlier, _) in enumerate(classes)
                for later, _ in classes[i + 1:] if issubclass(later, earlier)]
    assert shadowed == []


def test_every_status_in_the_table_is_one_the_help_lists():
    listed = {int(line.split()[0]) for line in EXIT_CODES.splitlines()[1:]}
    assert {code for _, _, code in _USER_ERRORS} <= listed
    assert listed == {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 130}


@pytest.mark.parametrize("error, code", [
    (UserError("no face found", 7), 7),
    (ValueError("a bug"), None),
])
def test_exit_code_of_user_errors_and_internal_ones(error, code):
    assert exit_code(error) == code


def test_exit_code_follows_the_table_and_prefers_the_subclass():
    from streamer.config import ConfigError
    from streamer.sources.frames import SourceError, SourceNotFound, SourceUnreachable

    assert issubclass(SourceNotFound, SourceError) and issubclass(SourceUnreachable, SourceError)
    assert exit_code(SourceNotFound("x.mp4: does not exist")) == 3
    assert exit_code(SourceUnreachable("rtsp://cam/x: unreachable for 60 s")) == 10
    assert exit_code(SourceError("x.mp4: not a readable video")) == 4
    assert exit_code(ConfigError("detector.treshold: no such key")) == 2
