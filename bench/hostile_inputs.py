"""Bad input: how the file source handles corrupt and hostile videos, as a table.

    .venv/bin/python bench/hostile_inputs.py [--timeout 20] [--json results.json] [--cases]

Writes every case of ``tests/testsupport/hostile_media.py`` (the same cases
``tests/streamer/sources/test_hostile_videos.py`` checks one by one) into a temporary directory,
opens each with ``open_source`` and reads it to the end in a child process with a hard
timeout, and prints per category: cases, refused with a clear error, decoded, crashes,
hangs, other exceptions, results that break the case's rule (wrong error class, a
message that does not name the file or say why, no frames, ...), and the longest time a
case took to open and read to the end (measured in the child; for a hang, the timeout). ``--cases`` also prints
one line per case; ``--json`` writes every result.

Cases marked for non-root users (a file without read permission) are skipped when run
as root, and counted as skipped.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "streamer")]

import hostile_media as hm  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per case before it counts as a hang")
    parser.add_argument("--json", help="write every case's result to this file")
    parser.add_argument("--cases", action="store_true", help="print one line per case too")
    args = parser.parse_args(argv)

    results = []
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        t0 = time.monotonic()
        prepared = hm.build(Path(tmp))
        build_s = time.monotonic() - t0
        with hm.Runner(args.timeout) as runner:
            for case_id, p in prepared.items():
                if p.case.skip_if_root and os.geteuid() == 0:
                    results.append({"id": case_id, "category": p.case.category, "outcome": "skipped",
                                    "error": None, "frames": None, "problems": [], "seconds": 0.0})
                    continue
                r = runner.run(p)
                results.append({"id": case_id, "category": p.case.category, "expect": p.case.expect,
                                "outcome": r["outcome"], "error": r.get("error"), "message": r.get("message"),
                                "frames": r.get("frames"), "seconds": r["seconds"],
                                "problems": hm.problems(p, r)})
        run_s = time.monotonic() - t0 - build_s

    columns = ("cases", "refused", "decoded", "crashes", "hangs", "exceptions", "broken rule", "skipped", "max s")
    rows: dict[str, dict] = defaultdict(lambda: dict.fromkeys(columns, 0))
    for r in results:
        for key in (r["category"], "total"):
            row = rows[key]
            row["cases"] += 1
            row[{"refused": "refused", "decoded": "decoded", "crash": "crashes", "hang": "hangs",
                 "exception": "exceptions", "skipped": "skipped"}[r["outcome"]]] += 1
            row["broken rule"] += bool(r["problems"])
            row["max s"] = max(row["max s"], r["seconds"])
    order = [c for c in dict.fromkeys(r["category"] for r in results)] + ["total"]
    print(f"| category | {' | '.join(columns)} |")
    print("|---|" + "---:|" * len(columns))
    for key in order:
        row = rows[key]
        cells = [str(row[c]) if c != "max s" else f"{row[c]:.2f}" for c in columns]
        name = f"**{key}**" if key == "total" else key
        print(f"| {name} | {' | '.join(cells)} |")
    print(f"\n{len(results)} cases written in {build_s:.1f} s, read in {run_s:.1f} s "
          f"(timeout {args.timeout:g} s per case)")
    if args.cases:
        print()
        for r in results:
            what = r["error"] or (f"{r['frames']} frames" if r["frames"] is not None else "")
            print(f"{r['id']:36s} {r['outcome']:8s} {r['seconds']:6.2f}s  {what}")
    for r in results:
        for problem in r["problems"]:
            print(f"PROBLEM {r['id']}: {problem}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "summary": {k: rows[k] for k in order}},
                                              indent=1) + "\n")
    bad = rows["total"]
    return 1 if bad["crashes"] or bad["hangs"] or bad["exceptions"] or bad["broken rule"] else 0


if __name__ == "__main__":
    sys.exit(main())
