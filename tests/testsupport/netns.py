"""Running tests inside a network namespace that holds loopback alone.

A test that submits an address the network policy must refuse (the cloud metadata
address, the LAN) must not be able to reach it if the policy failed. So such tests run
in their own pytest process inside ``unshare -n -m``: a fresh network namespace whose
only interface is ``lo`` (nothing can leave the machine), where the refused addresses
are added to ``lo`` so that traps listening there catch any connection that gets
through, and a private mount namespace whose ``/etc/hosts`` is the test's own (names
that resolve to refused addresses, and one that changes its answer mid-test).
"""
from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

INSIDE_ENV = "FACESTREAM_TEST_NETNS"     # set in the namespace's pytest
HOSTS_ENV = "FACESTREAM_TEST_HOSTS"      # the file bound over /etc/hosts there
REPO = Path(__file__).resolve().parents[2]


def inside() -> bool:
    """Whether this process runs in the namespace :func:`run_inside` made."""
    return os.environ.get(INSIDE_ENV) == "1" and only_loopback()


def only_loopback() -> bool:
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def unavailable() -> str | None:
    """Why a namespace cannot be made here, or None."""
    missing = [tool for tool in ("unshare", "ip", "mount") if shutil.which(tool) is None]
    if missing:
        return f"no {', '.join(missing)} command"
    probe = subprocess.run(["unshare", "-n", "-m", "--", "sh", "-c", "ip link set lo up && mount --make-rprivate /"],
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return f"cannot make a network namespace here (unshare -n -m: {probe.stderr.strip()[:200]})"
    return None


def run_inside(target: str, addresses: list[str], hosts: Path, timeout_s: float) -> subprocess.CompletedProcess:
    """Run ``pytest target`` in a new network and mount namespace: ``lo`` up, holding
    ``addresses`` (CIDRs) besides 127.0.0.1 and ::1, ``hosts`` bound over /etc/hosts."""
    steps = ["ip link set lo up"]
    steps += [f"ip {'-6 ' if ':' in a else ''}addr add {shlex.quote(a)} dev lo" for a in addresses]
    steps += [f"mount --bind {shlex.quote(str(hosts))} /etc/hosts",
              shlex.join([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", target])]
    env = {**os.environ, INSIDE_ENV: "1", HOSTS_ENV: str(hosts)}
    env = {k: v for k, v in env.items() if not k.startswith("RAY_")}   # a fresh, private Ray in there,
    env["RAY_USAGE_STATS_ENABLED"] = "0"   # whose usage report would probe the metadata addresses itself

    return subprocess.run(["unshare", "-n", "-m", "--", "sh", "-c", " && ".join(steps)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout_s)
