"""``serve``: the stream service (REST API on Ray Serve) in the foreground until Ctrl-C.
"""
from __future__ import annotations

import sys
from pathlib import Path


def serve_command(args) -> int:
    from streamer.config import load_config
    from streamer.service.server import check_exposure, serve_forever
    from streamer.view.server import open_view

    overrides: dict = {}
    for section, key, value in (("service", "host", args.host), ("service", "port", args.port),
                                ("redis", "url", args.redis_url), ("parquet", "out", args.out),
                                ("view", "port", args.view_port)):
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
        if view is not None:   # the configured Redis URL as given: the health line's is redacted
            view.start(info["url"], cfg.redis.url or info["redis"])
            print(f"live view at {view.url}", flush=True)

    check_exposure(cfg)   # an exposed API without a token stops here, before anything starts
    view = open_view(cfg)  # and so does a live view port that is taken
    print("facestream: starting Ray, the model replicas and the API ...", file=sys.stderr, flush=True)
    try:
        final = serve_forever(cfg, config_path=config_path, overrides=overrides, address=args.address,
                              on_ready=ready)
    finally:
        if view is not None:
            view.stop()
    print(f"facestream: stopped ({len(final)} streams: "
          + ", ".join(f"{k} {v}" for k, v in final.items()) + ")" if final else "facestream: stopped")
    return 0
