from streamer.pipeline.counters import Histogram, RateMeter


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
