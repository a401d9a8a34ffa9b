"""The facestream data version: one number for Parquet files, Redis entries and events.

Every writer stamps it (Parquet schema metadata ``facestream.schema_version``, the ``v``
field of a Redis entry or event) and every reader refuses data newer than itself, so an
old reader fails with "upgrade facestream" rather than misreading a newer layout. Older
versions stay readable: :func:`streamer.data.arrow.upgrade_table` and
:func:`streamer.data.redis_codec.decode_redis` bring them to this one.

History:

1. the first layout.
2. emotion, emotion_probs and their raw twins. Version-1 files and entries still read:
   their records carry emotion "" (not computed) and NaN probabilities.
3. pose, pose_raw and blendshapes are Arrow structs of named float32 fields, so SQL,
   pandas and polars read ``pose.yaw`` or ``blendshapes.jawOpen`` by name; the Redis
   entry layout is unchanged. Version-1 and -2 files are upgraded on read. Also in 3:
   box_source (whether the box came from the detector or from tracking between detector
   runs) and presence (track-driven detection); data without them reads "detector" and NaN.
4. person_id (streamer/persons/book.py): the tracks of one face share it; null where no
   identity was computed (data written before version 4, or with identity.enabled false).
   Later in 4, without a new number: the emotion label may also read ``too_dark`` or
   ``too_blurred``. The label is a plain string and every file names the abstentions its
   writer knew (metadata ``facestream.emotion_abstain``), so no layout changed.
"""
from __future__ import annotations

SCHEMA_VERSION = 4


def check_version(version: bytes | str | int | None) -> None:
    """Refuse data written by a newer facestream (None: the data does not say, as no
    version ever failed to)."""
    if version is not None and int(version) > SCHEMA_VERSION:
        raise ValueError(
            f"data has facestream schema version {int(version)}; this reader knows up to "
            f"{SCHEMA_VERSION} — upgrade facestream"
        )
