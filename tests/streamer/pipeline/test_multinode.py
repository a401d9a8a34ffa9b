"""Sessions and replicas on different nodes of a real multi-node Ray cluster.

``ray.cluster_utils.Cluster`` starts a head and two worker nodes as separate raylets on
this machine: one offers a ``replica_node`` resource, the other ``session_node``, and
the config's ``model.resources`` / ``session.resources`` pin each kind of actor there.
Every record must still reach Redis and Parquet. The cluster runs in a child process
(this module run as a script) because the test process is already connected to the
test session's own Ray, and a process holds one connection.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path


def test_sessions_and_replicas_on_different_nodes_deliver_every_record(face_video, tiny_checkpoint, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    proc = subprocess.run(
        [sys.executable, __file__, str(face_video.path), str(tiny_checkpoint), str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, env=env, cwd=Path(__file__).resolve().parents[3])
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    nodes = got["nodes"]   # node id -> custom resources
    assert "replica_node" in nodes[got["regressor_node"]] and "replica_node" in nodes[got["detector_node"]]
    assert "session_node" in nodes[got["session_node"]]
    assert got["session_node"] != got["regressor_node"]
    faces = face_video.frames * face_video.faces
    assert got["summary"]["frames"] == face_video.frames and got["summary"]["faces"] == faces
    assert got["redis_records"] == faces and got["parquet_records"] == faces


def _run(video: str, ckpt: str, out: str) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="facestream-cluster-"))
    token = tmp / "auth_token"
    token.write_text(secrets.token_hex(32))
    # Ray's state (and its current-cluster file) under our own directory, not /tmp/ray
    (tmp / "ray").mkdir()
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token), RAY_TMPDIR=str(tmp))
    import ray
    import redis
    from ray.cluster_utils import Cluster

    from streamer.config import load_config
    from streamer.data.dataset import read_records
    from streamer.data.sinks.parquet_sink import ParquetSink
    from streamer.data.sinks.redis_sink import RedisSink
    from streamer.pipeline.redis_server import EmbeddedRedis
    from streamer.pipeline.replicas import Replicas
    from streamer.pipeline.session import launch

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        cluster.add_node(num_cpus=2, resources={"replica_node": 4})
        cluster.add_node(num_cpus=1, resources={"session_node": 4})
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        cfg = load_config(overrides={
            "model": {"checkpoint": ckpt, "num_cpus_per_replica": 0.5, "resources": {"replica_node": 1}},
            "session": {"resources": {"session_node": 1}},
            "parquet": {"out": out},
        })
        replicas = Replicas.start(cfg, ckpt)
        replicas.ready()
        with EmbeddedRedis() as server:
            sinks = [partial(RedisSink, cfg.redis, "multi", server.url), partial(ParquetSink, cfg.parquet, "multi")]
            session = launch("multi", video, cfg, replicas, sinks)
            summary = ray.get(session.run.remote(), timeout=240)
            progress = ray.get(session.progress.remote())
            redis_records = redis.Redis.from_url(server.url).xlen("facestream:stream:multi")
        return {
            "nodes": {n["NodeID"]: sorted(k for k in n["Resources"] if k.endswith("_node")) for n in ray.nodes()},
            "regressor_node": ray.get(replicas.info()).node_id,
            "detector_node": ray.get(replicas.detectors[0].stats.remote())["node_id"],
            "session_node": progress.node_id,
            "summary": {k: getattr(summary, k) for k in ("frames", "faces")},
            "redis_records": redis_records,
            "parquet_records": len(read_records(out, "multi")),
        }
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    print(json.dumps(_run(*sys.argv[1:4])))
