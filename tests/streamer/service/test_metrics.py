import re

from streamer.pipeline.counters import BATCH_BUCKETS, Histogram
from streamer.service.metrics import render

_SAMPLE = re.compile(r'^([a-z_]+)(\{[^}]*\})? (-?[0-9.e+]+|NaN)$')


def _parse(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert line.startswith(("# HELP ", "# TYPE ")), line
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def test_render_streams_and_replicas():
    batches = Histogram(BATCH_BUCKETS)
    for size in (1, 3, 3, 8):
        batches.observe(size)
    snap = {
        "streams": {
            "cam-1": {"state": "running", "frames": 120, "faces": 240, "dropped_frames": 3, "reconnects": 1,
                      "processed_fps": 24.5, "source_fps": 25.0, "lag_s": 0.2},
            'we"ird': {"state": "ended", "frames": 10, "faces": 0},
        },
        "regressors": [{"crops": 15, "batches": 4, "queued_crops": 2, "batch_size": batches.snapshot()}],
        "detectors": [{"frames": 130}],
    }
    m = _parse(render(snap))
    assert m['facestream_streams{state="running"}'] == 1
    assert m['facestream_streams{state="ended"}'] == 1
    assert m['facestream_streams{state="failed"}'] == 0
    assert m['facestream_stream_frames_total{stream="cam-1"}'] == 120
    assert m['facestream_stream_dropped_frames_total{stream="cam-1"}'] == 3
    assert m['facestream_stream_frames_total{stream="we\\"ird"}'] == 10   # label escaped
    assert 'facestream_stream_lag_seconds{stream="we\\"ird"}' not in m    # unknown: no sample
    assert m['facestream_regressor_batch_size_bucket{replica="0",le="1"}'] == 1
    assert m['facestream_regressor_batch_size_bucket{replica="0",le="4"}'] == 3
    assert m['facestream_regressor_batch_size_bucket{replica="0",le="+Inf"}'] == 4
    assert m['facestream_regressor_batch_size_sum{replica="0"}'] == 15
    assert m['facestream_regressor_queue_crops{replica="0"}'] == 2
    assert m['facestream_detector_frames_total{replica="0"}'] == 130
