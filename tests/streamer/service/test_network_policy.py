"""The network policy against the real service, in a network namespace holding loopback
alone (tests/testsupport/netns.py): every refused form of the issue's addresses is a 400
before anything is opened, an allowed camera streams, a redirect, an HLS segment and a
name that resolves (or is rebound) to a refused address are refused, and traps on the
refused addresses see no connection; and the service's private Ray listens on loopback
alone, asks no cloud metadata server and looks no name up (a name server trap on
127.0.0.1:53 is the namespace's resolver).

The checks themselves are tests/streamer/service/netns_policy_checks.py, which this runs
in its own pytest inside the namespace (it refuses to run anywhere else); its FIGURE
lines are the figures in docs/reliability.md.
"""
from __future__ import annotations

import re

import pytest

from testsupport import netns

CHECKS = "tests/streamer/service/netns_policy_checks.py"
# Added to the namespace's lo: the refused addresses (so that traps can listen there)
# and the allowed "LAN camera".
ADDRESSES = ["169.254.169.254/32", "169.254.0.1/32", "100.100.100.200/32", "168.63.129.16/32", "10.0.0.5/32",
             "192.168.1.20/32", "192.168.1.64/32", "172.16.0.1/32", "100.64.0.1/32", "10.99.0.7/32",
             "fd00:ec2::254/128", "fd12:3456::1/128"]
HOSTS = """127.0.0.1 localhost
::1 localhost
10.99.0.7 camera.test
169.254.169.254 metadata.test
10.99.0.7 mixed.test
169.254.169.254 mixed.test
10.99.0.7 rebind.test
"""


def test_the_service_refuses_what_the_policy_refuses_in_a_loopback_only_namespace(tmp_path):
    why = netns.unavailable()
    if why:
        pytest.skip(why)
    hosts = tmp_path / "hosts"
    hosts.write_text(HOSTS)
    run = netns.run_inside(CHECKS, ADDRESSES, hosts, timeout_s=900)
    print("\n".join(line[line.index("FIGURE"):] for line in run.stdout.splitlines() if "FIGURE" in line))
    failures = run.stdout[run.stdout.find("= FAILURES =") if "= FAILURES =" in run.stdout else -3000:]
    assert run.returncode == 0, failures[:12000] + "\n" + run.stderr[-2000:]
    summary = run.stdout.strip().splitlines()[-1]
    assert re.match(r"\d+ passed(, \d+ warnings?)? in ", summary), summary   # none failed, none skipped
