"""Source URLs the network policy must refuse, by group: the unit tests
(tests/streamer/sources/test_netpolicy.py) and the service run in a loopback-only network
namespace (tests/streamer/service/netns_policy_checks.py) both use this table, and its
counts are the figures in docs/reliability.md.

Every host here is written literally (no name to look up), so checking them costs no
lookup; each URL names its port, or the scheme's default (80, 443, 554, 322), on which the
namespace's traps listen.
"""
from __future__ import annotations

SECRET = "hunter2"   # a password in some URLs: no refusal may repeat it

ALWAYS_DENIED: dict[str, list[str]] = {
    "cloud metadata and link-local": [
        "http://169.254.169.254/latest/meta-data/",
        f"http://admin:{SECRET}@169.254.169.254/latest/meta-data/iam/security-credentials/",
        "https://169.254.169.254/",
        "rtsp://169.254.169.254/stream",
        f"rtsps://admin:{SECRET}@169.254.169.254/stream",
        "http://169.254.0.1/",
        "http://[fe80::1]/",
        "http://[fe80::a9fe:a9fe]/",
        "http://100.100.100.200/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[fd00:ec2:0::254]/",
        "http://168.63.129.16/machine?comp=goalstate",
    ],
    "unspecified": [
        "http://0.0.0.0:6379/",
        "rtsp://0.0.0.0/",
        "http://0.1.2.3/",
        "http://[::]:6379/",
        "http://[0:0:0:0:0:0:0:0]/",
        "http://[::ffff:0.0.0.0]:6379/",
    ],
    "multicast, reserved, broadcast": [
        "http://224.0.0.1/",
        "rtsp://239.255.0.1/stream",
        "http://[ff02::1]/",
        "http://240.0.0.1/",
        "http://255.255.255.255/",
    ],
    "IPv4-mapped, NAT64, 6to4 and other embeddings": [
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[0:0:0:0:0:ffff:a9fe:a9fe]/",
        "http://[::FFFF:A9FE:A9FE]/",
        "http://[::ffff:100.100.100.200]/",
        "http://[::ffff:0:a9fe:a9fe]/",             # SIIT IPv4-translated
        "http://[64:ff9b::169.254.169.254]/",       # NAT64
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[64:ff9b::6464:64c8]/",             # NAT64 of 100.100.100.200
        "http://[64:ff9b:1::a9fe:a9fe]/",           # local-use NAT64
        "http://[2002:a9fe:a9fe::1]/",              # 6to4
        "http://[::a9fe:a9fe]/",                    # IPv4-compatible
        "http://[::169.254.169.254]/",
        "rtsp://[::ffff:169.254.169.254]/stream",
    ],
    "other notations of IPv4 (decimal, hex, octal, short, trailing dot)": [
        "http://2852039166/",
        "http://0xa9fea9fe/",
        "http://0XA9FEA9FE/",
        "http://0xa9.0xfe.0xa9.0xfe/",
        "http://0xA9.0xFE.0xA9.0xFE/",
        "http://0251.0376.0251.0376/",
        "http://00000251.00376.0251.0376/",
        "http://0251.254.169.254/",
        "http://169.254.169.254./",
        "http://2852039166./",
        "http://0xa9fea9fe./",
        "http://169.254.43518/",
        "http://169.16689662/",
        "http://0xa9.254.0xa9fe/",
        f"http://admin:{SECRET}@2852039166/latest/meta-data/",
        "rtsp://2852039166/stream",
        "http://1684301000/latest/meta-data/",      # 100.100.100.200
        "http://0x646464c8/",
        "http://0/",
        "http://0x0:6379/",
        "http://000.0.0.0:6379/",
        "http://0xe0000001/",                       # 224.0.0.1
    ],
    "malformed numeric hosts and zone ids": [
        "http://169.254.169.254.1/",
        "http://256.254.169.254/",
        "http://0x1ffffffff/",
        "http://08.8.8.8/",
        "http://[fe80::1%25lo]/",
        "http://[::ffff:0251.0376.0251.0376]/",
    ],
}

# Refused when loopback and private ranges are (an exposed service, or
# source.local_networks: deny); allowed on a loopback-only service.
LOCAL: dict[str, list[str]] = {
    "loopback and private (service listening beyond loopback)": [
        "http://127.0.0.1:6379/",
        "rtsp://127.0.0.1:8554/stream",
        "http://127.1:6379/",
        "http://0177.0.0.1:6379/",
        "http://2130706433:6379/",
        "http://0x7f000001:6379/",
        "http://127.0.0.1.:6379/",
        "http://[::1]:6379/",
        "http://[::ffff:127.0.0.1]:6379/",
        "http://[::ffff:7f00:1]:6379/",
        "http://[64:ff9b::7f00:1]:6379/",
        "http://10.0.0.5/",
        "http://192.168.1.20/",
        "rtsp://admin:hunter2@192.168.1.64/Streaming/Channels/101",
        "http://172.16.0.1/",
        "http://100.64.0.1/",
        "http://[fd12:3456::1]/",
        "http://[::ffff:192.168.1.20]/",
        "http://3232235796/",                       # 192.168.1.20
    ],
}


def forms(groups: dict[str, list[str]]) -> list[tuple[str, str]]:
    """(group, url) pairs of a table."""
    return [(group, url) for group, urls in groups.items() for url in urls]
