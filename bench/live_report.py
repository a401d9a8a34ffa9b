"""How ``bench/live_streams.py`` prints its results: per N a block of streams, then one
Markdown table for docs/performance.md and the conclusion (the largest real-time N)."""
from __future__ import annotations


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{1000 * x:.0f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _f(x: float | None, fmt: str = ".1f") -> str:
    return "-" if x is None else format(x, fmt)


def print_n(r: dict) -> None:
    if "error" in r:
        print(f"N={r['n']}: {r['error']}")
        return
    cpu = r["cpu"]
    print(f"\nN={r['n']}  window {r['window_s']:.1f} s, target {r['target_fps']:g} fps/stream, "
          f"start-up {r['startup_s']:.1f} s, load avg {r['loadavg_1m']:.2f}")
    print(f"  {'stream':<22} {'fps':>6} {'x tgt':>6} {'(status)':>8} {'recv':>6} {'drop %':>7} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'>1 s %':>7} {'faces/f':>7}  ok")
    for s in r["streams"]:
        print(f"  {s['id']:<22} {s['fps']:6.1f} {s['fps_ratio']:6.2f} {_f(s['status_processed_fps']):>8} "
              f"{s['received_fps']:6.1f} {100 * s['drop_fraction']:7.1f} {_ms(s['latency_p50_s']):>7} "
              f"{_ms(s['latency_p99_s']):>7} {_pct(s['window_over_1s']):>7} "
              f"{_f(s['faces_per_frame'], '.2f'):>7}  {'yes' if s['realtime'] else 'NO'}"
              + (f"  ({s['reconnects']} reconnects)" if s["reconnects"] else ""))
    if "file_fps" in r:
        print(f"  file stream beside them: {r['file_fps']:.1f} frames/s")
    print(f"  total {r['total_fps']:.1f} frames/s; regressor mean batch {_f(r['regressor_batch_mean'], '.2f')} crops, "
          f"{r['regressor_crops_per_s']:.1f} crops/s; detector {r['detector_frames_per_s']:.1f} frames/s, "
          f"{_f(r['detector_call_ms'], '.0f')} ms/call")
    if r.get("stages"):
        print("  where the latency goes, p50 / p99 ms: "
              + ", ".join(f"{stage} {_ms(v['p50_s'])} / {_ms(v['p99_s'])}" for stage, v in r["stages"].items()))
    print(f"  CPU cores: service+harness {cpu['tree_cores']:.2f} (harness alone {cpu['harness_cores']:.2f}), "
          f"other processes {_f(cpu.get('other_cores'), '.2f')}, machine {_f(cpu.get('machine_cores'), '.2f')} "
          f"(processes with nice > 0: {_f(cpu.get('niced_cores'), '.2f')})")
    if r["fps_ignored"]:
        print(f"  WARNING: streams ran above the requested {r['target_fps']:g} fps: "
              "the service did not apply `fps` to these live streams")
    print(f"  => {'all real-time' if r['all_realtime'] else 'NOT all real-time'}")


def summary_table(results: list[dict]) -> str:
    lines = ["| N | fps per stream (min) | x target (min) | dropped % (max) | p50 / p99 ms | "
             "window > 1 s % | regressor batch | CPU service / other | real-time |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['n']} | {r['error']} | | | | | | | no |")
            continue
        lines.append(
            f"| {r['n']} | {r['min_fps']:.1f} | {r['min_fps'] / r['target_fps']:.2f} | "
            f"{100 * r['max_drop_fraction']:.1f} | {_ms(r['latency_p50_s'])} / {_ms(r['latency_p99_s'])} | "
            f"{_pct(r['window_over_1s'])} | "
            f"{_f(r['regressor_batch_mean'], '.2f')} | {r['cpu']['tree_cores']:.2f} / "
            f"{_f(r['cpu'].get('other_cores'), '.2f')} | {'yes' if r['all_realtime'] else 'no'} |")
    return "\n".join(lines)


def conclusion(results: list[dict], target: float) -> tuple[int, str]:
    ok = [r["n"] for r in results if r.get("all_realtime")]
    best = max(ok, default=0)
    if best:
        r = next(r for r in results if r["n"] == best)
        text = (f"largest N with every stream real-time: {best} at {target:g} fps per stream; "
                f"latency there p50 {_ms(r['latency_p50_s'])} ms, p99 {_ms(r['latency_p99_s'])} ms "
                f"(median stream p50, worst stream p99)")
        failed_below = [r["n"] for r in results if r["n"] < best and not r.get("all_realtime")]
        if failed_below:
            text += f"; note N={failed_below} failed below it (noise)"
    else:
        r = next((r for r in results if "error" not in r), None)
        text = f"no N is real-time at {target:g} fps per stream"
        if r is not None:
            text += (f"; N={r['n']} processed {r['min_fps']:.1f} fps ({r['min_fps'] / target:.2f} x), "
                     f"dropped {100 * r['max_drop_fraction']:.0f} %, latency p50 {_ms(r['latency_p50_s'])} ms, "
                     f"p99 {_ms(r['latency_p99_s'])} ms")
    return best, text
