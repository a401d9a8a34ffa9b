"""Modules stay small enough to read whole: a module of the package or a benchmark
that grows past the limit is split by role, not by line count alone."""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 600
MODULES = sorted(p for package in ("streamer", "workers", "training", "bench") for p in (REPO / package).rglob("*.py"))


def test_the_package_has_modules():
    assert len(MODULES) > 20


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(REPO)))
def test_module_is_under_the_line_limit(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(REPO)} has {lines} lines (limit {MAX_LINES}): split it by role"
