"""``serve``: the stream service (REST API on Ray Serve) in the foreground until Ctrl-C.
"""
from __future__ import annotations

import sys
from pathlib import Path


def serve_command(args) -> int:
    from streamer.config import load_config
    from streamer.service.server import check_exposure, serve_forever

    overrides: dict = {}
    for section, key, value in (("service", "host", args.host), ("service", "port", args.port),
                                ("redis", "url", args.redis_url), ("parquet", "out", args.out)):
        if value is not None:
            overrides.setdefault(section, {})[key] = value
    if args.out:
        overrides["parquet"]["out"] = str(Path(args.out).resolve())
    if args.media_root:
        overrides["media_root"] = str(Path(args.media_root).resolve())
    if args.insecure_open_api:
        overrides.setdefault("service", {})["insecure_open_api"] = True
    cfg = load_config(args.config, overrides)
    config_path = str(Path(args.config).resolve()) if args.config else (
        str(Path("ray_config.yaml").resolve()) if Path("ray_config.yaml").exists() else None)

    def ready(info: dict) -> None:
        local = "allowed" if info["local_networks"] == "allow" else "refused"
        print(f"facestream serving on {info['url']}  (Redis {info['redis']}, Parquet {info['parquet_out']}, "
              f"media root {info['media_root'] or 'none: files refused'}, loopback/private sources {local}); "
              "Ctrl-C stops", flush=True)

    check_exposure(cfg)   # an exposed API without a token stops here, before anything starts
    print("facestream: starting Ray, the model replicas and the API ...", file=sys.stderr, flush=True)
    final = serve_forever(cfg, config_path=config_path, overrides=overrides, address=args.address,
                          on_ready=ready)
    print(f"facestream: stopped ({len(final)} streams: "
          + ", ".join(f"{k} {v}" for k, v in final.items()) + ")" if final else "facestream: stopped")
    return 0
