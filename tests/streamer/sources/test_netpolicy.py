"""streamer.sources.netpolicy: which addresses a source may reach, however they are written.

No connection is made here: names are looked up through a resolver the tests provide
(which also counts its calls), so nothing leaves the machine. The same table of refused
forms runs against the real service in tests/streamer/service/netns_policy_checks.py.
"""
from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from streamer.config import ConfigError, SourceConfig, load_config
from streamer.sources.netpolicy import NetworkPolicy, NetworkRefused, beyond_loopback
from streamer.sources.urls import SourceRefused, check_source
from testsupport.denied_addresses import ALWAYS_DENIED, LOCAL, SECRET, forms

LOCAL_SERVICE = NetworkPolicy.from_config(SourceConfig())                 # auto, not exposed
EXPOSED = NetworkPolicy.from_config(SourceConfig(), exposed=True)         # auto, exposed


class Resolver:
    """A name service in a dict: each call is counted; a missing name does not resolve."""

    def __init__(self, answers: dict[str, list[str]]):
        self.answers = answers
        self.calls: list[str] = []

    def __call__(self, host: str, port: int):
        self.calls.append(host)
        if host not in self.answers:
            raise OSError(f"{host}: no such name")
        return [ipaddress.ip_address(a) for a in self.answers[host]]


def no_lookup(host: str, port: int):
    raise AssertionError(f"a literal host was looked up: {host}")


def refusal(policy: NetworkPolicy, url: str, resolve=no_lookup) -> str | None:
    """Why ``url`` is refused (by the URL policy or the network policy), or None."""
    try:
        spec = check_source(url, None)
        policy.check_url(spec.target, resolve)
    except SourceRefused as e:
        return str(e)
    return None


@pytest.mark.parametrize("group,url", forms(ALWAYS_DENIED), ids=lambda v: v[:48])
def test_always_denied_forms_are_refused_without_a_lookup(group, url):
    for policy in (LOCAL_SERVICE, EXPOSED):
        why = refusal(policy, url)
        assert why is not None, url
        assert SECRET not in why and "admin" not in why and len(why) < 400


@pytest.mark.parametrize("group,url", forms(LOCAL), ids=lambda v: v[:48])
def test_loopback_and_private_forms_are_refused_when_exposed(group, url):
    why = refusal(EXPOSED, url)
    assert why is not None and SECRET not in why
    assert "source.allow_networks" in why or "written another way" in why


def test_the_table_holds_every_form_the_issue_names():
    urls = {url for _, url in forms(ALWAYS_DENIED)}
    for url in ("http://169.254.169.254/latest/meta-data/", "http://0.0.0.0:6379/", "http://2852039166/",
                "http://0xa9.0xfe.0xa9.0xfe/", "http://[::ffff:169.254.169.254]/",
                "http://[fd00:ec2::254]/latest/meta-data/", "http://100.100.100.200/latest/meta-data/",
                "http://0251.0376.0251.0376/", "http://169.254.169.254./", "http://[64:ff9b::a9fe:a9fe]/"):
        assert url in urls
    assert len(urls) >= 60


@pytest.mark.parametrize("host,means", [
    ("2852039166", "169.254.169.254"), ("0xa9fea9fe", "169.254.169.254"), ("0XA9FEA9FE", "169.254.169.254"),
    ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"), ("0251.0376.0251.0376", "169.254.169.254"),
    ("00000251.00376.0251.0376", "169.254.169.254"), ("169.254.43518", "169.254.169.254"),
    ("169.16689662", "169.254.169.254"), ("0xa9.254.0xa9fe", "169.254.169.254"), ("2852039166.", "169.254.169.254"),
    ("127.1", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"), ("2130706433", "127.0.0.1"), ("0", "0.0.0.0"),
    ("0x", "0.0.0.0"), ("1684301000", "100.100.100.200"), ("10.1", "10.0.0.1"), ("8.8.2056", "8.8.8.8"),
])
def test_other_notations_name_the_address_they_spell(host, means):
    with pytest.raises(NetworkRefused) as info:
        LOCAL_SERVICE.host_address(host)
    assert f"is {means} written another way" in str(info.value)


def test_other_notations_of_an_allowed_address_are_refused_too_with_the_canonical_one():
    # parsers disagree about them, and nothing needs them: the message says what to write
    with pytest.raises(NetworkRefused, match=r"write it as 8\.8\.8\.8$"):
        LOCAL_SERVICE.host_address("134744072")
    assert LOCAL_SERVICE.host_address("8.8.8.8.") == ipaddress.ip_address("8.8.8.8")   # a trailing dot only


@pytest.mark.parametrize("host", ["1.2.3.4.5", "256.1.1.1", "0x1ffffffff", "08.1.1.1", "1..2", "cam.1", "a.0x10",
                                  "4294967296"])
def test_numeric_hosts_that_do_not_parse_are_refused(host):
    with pytest.raises(NetworkRefused, match="looks like a numeric address but is not a valid one"):
        LOCAL_SERVICE.host_address(host)


@pytest.mark.parametrize("host", ["cam.local", "camera-1.example.org", "0x1g", "1.2.3.cam", "localhost",
                                  "xn--bcher-kva.ch"])
def test_names_are_names(host):
    assert LOCAL_SERVICE.host_address(host) is None


def test_reasons_say_what_the_address_is_and_how_to_allow_it():
    assert refusal(EXPOSED, "http://169.254.169.254/") == (
        "169.254.169.254 is a link-local address (cloud metadata services answer there), which the network "
        "policy always refuses (source.allow_networks can allow it)")
    assert refusal(EXPOSED, "http://[::ffff:a9fe:a9fe]/").startswith(
        "::ffff:a9fe:a9fe is 169.254.169.254 (IPv4-mapped), a link-local address")
    assert refusal(EXPOSED, "http://[64:ff9b::6464:64c8]/").startswith(
        "64:ff9b::6464:64c8 is an address that embeds 100.100.100.200, a cloud metadata endpoint (Alibaba Cloud)")
    assert refusal(EXPOSED, "rtsp://127.0.0.1:8554/stream") == (
        "127.0.0.1 is a loopback address, which this service refuses (source.local_networks: deny, or auto when "
        "the service listens beyond loopback); source.allow_networks can allow it")
    deny = NetworkPolicy.from_config(SourceConfig(local_networks="deny"))
    assert refusal(deny, "http://10.0.0.5/").startswith("10.0.0.5 is a private address, which this service refuses")


@pytest.mark.parametrize("url", ["rtsp://127.0.0.1:8554/stream", "http://[::1]:8080/x.ts", "http://10.0.0.5/x.ts",
                                 "rtsp://admin:pw@192.168.1.64/Streaming/Channels/101", "http://172.16.0.1/",
                                 "http://100.64.0.1/", "http://[fd12:3456::1]/", "http://[::ffff:192.168.1.20]/",
                                 "http://127.0.0.1.:6379/", "http://8.8.8.8/", "https://[2001:4860::8888]/",
                                 "http://[2001:0:4136:e378:8000:63bf:56fe:5601]/"])
def test_a_loopback_only_service_reaches_its_own_network_and_the_internet(url):
    # the README's local flow (`publish` + `submit rtsp://127.0.0.1:8554/...`) and LAN cameras
    assert refusal(LOCAL_SERVICE, url) is None
    allow = NetworkPolicy.from_config(SourceConfig(local_networks="allow"), exposed=True)
    assert refusal(allow, url) is None


def test_allow_networks_opens_a_range_and_the_longest_prefix_decides():
    cfg = SourceConfig(allow_networks=["192.168.1.0/24", "169.254.169.254/32", "10.0.0.0/8"],
                       deny_networks=["192.168.1.13/32", "10.0.0.0/8", "8.8.0.0/16"])
    policy = NetworkPolicy.from_config(cfg, exposed=True)
    assert policy.verdict(ipaddress.ip_address("192.168.1.20")) is None              # allowed on an exposed service
    assert policy.verdict(ipaddress.ip_address("::ffff:192.168.1.20")) is None       # in either spelling
    assert policy.verdict(ipaddress.ip_address("192.168.1.13")) == "refused by source.deny_networks"
    assert policy.verdict(ipaddress.ip_address("192.168.2.1")) is not None           # the rest of the LAN stays refused
    assert policy.verdict(ipaddress.ip_address("169.254.169.254")) is None           # an operator's explicit word
    assert policy.verdict(ipaddress.ip_address("169.254.169.253")) is not None
    assert policy.verdict(ipaddress.ip_address("10.1.2.3")) == "refused by source.deny_networks"   # a tie denies
    assert policy.verdict(ipaddress.ip_address("8.8.8.8")) == "refused by source.deny_networks"
    assert policy.verdict(ipaddress.ip_address("8.9.8.8")) is None


def test_an_embedded_address_must_pass_as_well():
    nat64 = NetworkPolicy.from_config(SourceConfig(allow_networks=["64:ff9b::/96"]))
    assert nat64.verdict(ipaddress.ip_address("64:ff9b::808:808")) is None            # 8.8.8.8 through NAT64
    assert "embeds 169.254.169.254" in nat64.verdict(ipaddress.ip_address("64:ff9b::a9fe:a9fe"))
    teredo = ipaddress.ip_address("2001:0:4136:e378:8000:63bf:56fe:5601")
    assert LOCAL_SERVICE.verdict(teredo) is None                                      # server and client public
    # a Teredo address whose (obfuscated) client part is 169.254.169.254
    client = int(ipaddress.ip_address("169.254.169.254")) ^ 0xFFFFFFFF
    crafted = ipaddress.IPv6Address((0x20010000 << 96) | (int(ipaddress.ip_address("65.54.227.120")) << 64) | client)
    assert "embeds 169.254.169.254" in LOCAL_SERVICE.verdict(crafted)


def test_a_name_is_looked_up_once_and_every_address_must_pass():
    names = Resolver({"camera.test": ["10.99.0.7", "fd12::7"], "metadata.test": ["169.254.169.254"],
                      "mixed.test": ["10.99.0.7", "169.254.169.254"], "loop.test": ["127.0.0.1", "::1"]})
    assert LOCAL_SERVICE.check_url("rtsp://camera.test/stream", names) == [
        ipaddress.ip_address("10.99.0.7"), ipaddress.ip_address("fd12::7")]
    assert names.calls == ["camera.test"]
    with pytest.raises(NetworkRefused, match=r"host 'metadata\.test' resolves to 169\.254\.169\.254, a link-local"):
        LOCAL_SERVICE.check_url("http://metadata.test/latest/meta-data/", names)
    with pytest.raises(NetworkRefused, match=r"resolves to 169\.254\.169\.254 \(one of 2 addresses\)"):
        LOCAL_SERVICE.check_url("http://mixed.test/", names)
    with pytest.raises(NetworkRefused, match="resolves to 127.0.0.1"):
        EXPOSED.check_url(f"http://admin:{SECRET}@loop.test:6379/", names)
    assert names.calls == ["camera.test", "metadata.test", "mixed.test", "loop.test"]
    with pytest.raises(OSError):                       # not a refusal: the session retries it
        LOCAL_SERVICE.check_url("rtsp://gone.test/stream", names)


@pytest.mark.parametrize("host,beyond", [("127.0.0.1", False), ("127.0.0.2", False), ("::1", False),
                                         ("[::1]", False), ("localhost", False), ("0.0.0.0", True), ("::", True),
                                         ("", True), ("192.168.1.5", True), ("myhost.example", True)])
def test_what_counts_as_listening_beyond_loopback(host, beyond):
    assert beyond_loopback(host) is beyond


def test_the_lists_come_from_ray_config_yaml_and_bad_entries_are_config_errors(tmp_path):
    config = tmp_path / "ray_config.yaml"
    config.write_text("source:\n  allow_networks: [192.168.1.0/24, 'fd12::/64']\n  deny_networks: []\n"
                      "  local_networks: deny\n")
    cfg = load_config(config)
    assert cfg.source.allow_networks == ["192.168.1.0/24", "fd12::/64"]
    policy = NetworkPolicy.from_config(cfg.source)
    assert policy.verdict(ipaddress.ip_address("192.168.1.9")) is None
    assert policy.verdict(ipaddress.ip_address("192.168.2.9")) is not None
    config.write_text("source:\n  allow_networks: 192.168.1.0/24\n")
    with pytest.raises(ConfigError, match="source.allow_networks: expected a list"):
        load_config(config)
    with pytest.raises(ConfigError, match=r"source.deny_networks\[1\]: 'not-a-net' is not a network"):
        NetworkPolicy.from_config(SourceConfig(deny_networks=["10.0.0.0/8", "not-a-net"]))
    with pytest.raises(ConfigError, match="source.local_networks: expected one of auto, allow, deny"):
        NetworkPolicy.from_config(SourceConfig(local_networks="sometimes"))


def test_the_shipped_config_keeps_the_defaults():
    shipped = load_config(Path(__file__).resolve().parents[3] / "ray_config.yaml").source
    assert (shipped.allow_networks, shipped.deny_networks, shipped.local_networks, shipped.rtsp_udp) == \
        ([], [], "auto", False)
