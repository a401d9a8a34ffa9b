from streamer.pipeline.counters import Histogram, RateMeter, Stage, StageLatency


def test_histogram_counts_cumulatively_with_inf_bucket():
    h = Histogram((1, 2, 4))
    for v in (0.5, 1, 1.5, 3, 9, 9):
        h.observe(v)
    snap = h.snapshot()
    assert snap["buckets"] == [[1, 2], [2, 3], [4, 4], [None, 6]]
    assert snap["count"] == 6 and snap["sum"] == 24.0


def test_rate_meter_measures_recent_rate_and_forgets_old_bursts():
    m = RateMeter(window_s=2.0)
    for i in range(11):           # 10 frames/s for one second
        m.add(1, now=100.0 + i * 0.1)
    assert abs(m.rate(now=101.0) - 10.0) < 1e-9
    assert m.rate(now=110.0) == 0.0   # nothing for longer than the window
    for i in range(5):            # then 2 frames/s
        m.add(1, now=120.0 + i * 0.5)
    assert abs(m.rate(now=122.0) - 2.0) < 1e-9


def test_reservoir_percentiles_of_recent_values():
    from streamer.pipeline.counters import Reservoir

    r = Reservoir(size=100)
    assert r.percentile(50) is None
    for v in range(1000):          # only the last 100 (900..999) are kept
        r.observe(v)
    assert r.percentile(50) == 949 and r.percentile(99) == 998 and r.percentile(100) == 999


def test_stage_latency_splits_each_frames_latency_into_the_stages_it_passed():
    stages = StageLatency()
    assert stages.snapshot() is None
    for k in range(100):   # captured, taken, tracked, answered, published
        t0 = 1000.0 + k
        stages.observe(t0, t0 + 0.5, t0 + 0.52, t0 + 0.58, t0 + 0.6 + (0.2 if k == 99 else 0.0))
    snap = stages.snapshot()
    assert list(snap) == [str(s) for s in Stage] == ["source", "track", "model", "publish"]
    assert {k: round(v["p50_s"], 6) for k, v in snap.items()} == {"source": 0.5, "track": 0.02, "model": 0.06,
                                                                    "publish": 0.02}
    assert round(snap["publish"]["p99_s"], 6) == 0.02 and round(snap["source"]["p99_s"], 6) == 0.5
    stages.observe(5.0, 4.0, 4.0, 4.0, 4.0)   # a clock step back counts as no time, not negative
    assert min(v["p50_s"] for v in stages.snapshot().values()) >= 0
