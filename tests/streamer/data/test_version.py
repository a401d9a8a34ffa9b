"""The data version every writer stamps and every reader checks."""
from __future__ import annotations

import pytest

from streamer.data.version import SCHEMA_VERSION, check_version


def test_readers_take_their_own_and_older_versions_and_refuse_newer():
    assert SCHEMA_VERSION == 4
    for version in (None, 1, "2", b"3", SCHEMA_VERSION):
        check_version(version)
    with pytest.raises(ValueError, match="version 5; this reader knows up to 4 — upgrade facestream"):
        check_version(b"5")
