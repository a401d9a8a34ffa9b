"""Which network addresses a source may connect to: the policy, and the one lookup.

Source URLs come from the network, so without a policy anyone who can submit a stream
can make the service open connections inside the network it runs in: the cloud metadata
endpoint, the machine's own Redis, the LAN. :mod:`streamer.sources.urls` decides which *kinds*
of URL are sources; this module decides which *addresses* they may reach, and
:mod:`streamer.sources.gateway` makes every connection through it.

The rules, in order (the first that matches decides):

1. ``source.deny_networks`` and ``source.allow_networks``: the longest prefix matching
   the address, across both lists, decides (a tie denies). An operator's explicit word
   is the only thing that can allow what the rules below refuse.
2. Always refused: unspecified (0.0.0.0/8, ::), link-local (169.254.0.0/16, fe80::/10,
   where cloud metadata services answer), multicast, reserved (240.0.0.0/4 and the
   broadcast address), and the well-known metadata endpoints outside link-local
   (fd00:ec2::254, 100.100.100.200, 168.63.129.16).
3. Loopback and private ranges (127/8, ::1, 10/8, 172.16/12, 192.168/16, 100.64/10,
   fc00::/7) as ``source.local_networks`` says: ``allow``, ``deny``, or ``auto``, which
   allows them unless the service listens beyond loopback.
4. Everything else is allowed.

An address is judged as what it reaches, not as it is written: an IPv4-mapped IPv6
address (``::ffff:169.254.169.254``) is the IPv4 address, and an IPv6 address that
embeds an IPv4 one (IPv4-compatible, SIIT, NAT64 ``64:ff9b::/96`` and ``64:ff9b:1::/48``,
6to4, Teredo) must pass both as itself and through the IPv4 address it embeds. Host
names are resolved once and *every* address returned must pass (a name that also
resolves to a denied address is refused whichever one a connection would have used);
the caller then connects to an address from that same answer, never to the name, so a
second lookup cannot be steered elsewhere (DNS rebinding). Numeric hosts written any way
but the canonical one (``2852039166``, ``0xa9.0xfe.0xa9.0xfe``, ``0251.0376.0251.0376``,
``169.254.43518``; a trailing dot is dropped first) are refused outright, naming the
address they spell: parsers disagree about such forms, and a camera has no reason to
use them. A host whose last label is a number is such a form (as in the WHATWG URL
standard); one that does not parse is refused as malformed.

Refusals are :class:`NetworkRefused`: they name the address and the rule, never the
URL's credentials, and they are not retried (the same answer would come back).
"""
from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Callable, Sequence
from urllib.parse import urlsplit

from streamer.config import ConfigError, SourceConfig
from streamer.sources.urls import SourceRefused

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> every address the name resolves to; the one lookup a connection gets.
Resolver = Callable[[str, int], Sequence[Address]]

LOCAL_CHOICES = ("auto", "allow", "deny")
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}

_LINK_LOCAL = "a link-local address (cloud metadata services answer there)"
_ALWAYS_DENIED: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "an unspecified ('this host') address"),
    ("::/128", "the unspecified address"),
    ("169.254.0.0/16", _LINK_LOCAL),
    ("fe80::/10", "a link-local address"),
    ("224.0.0.0/4", "a multicast address"),
    ("ff00::/8", "a multicast address"),
    ("240.0.0.0/4", "a reserved or broadcast address"),
    ("fd00:ec2::254/128", "a cloud metadata endpoint (AWS, IPv6)"),
    ("100.100.100.200/32", "a cloud metadata endpoint (Alibaba Cloud)"),
    ("168.63.129.16/32", "a cloud platform endpoint (Azure WireServer)"),
)
_LOCAL: tuple[tuple[str, str], ...] = (
    ("127.0.0.0/8", "a loopback address"),
    ("::1/128", "the loopback address"),
    ("10.0.0.0/8", "a private address"),
    ("172.16.0.0/12", "a private address"),
    ("192.168.0.0/16", "a private address"),
    ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
    ("fc00::/7", "a unique local (private) IPv6 address"),
)
# IPv6 ranges whose low 32 bits are an IPv4 address (the mapped range is handled apart:
# it *is* the IPv4 address).
_EMBEDS_LOW_32 = tuple(ipaddress.ip_network(n) for n in (
    "::/96",              # IPv4-compatible (deprecated, still routable on some stacks)
    "::ffff:0:0:0/96",    # SIIT IPv4-translated
    "64:ff9b::/96",       # NAT64 well-known prefix
    "64:ff9b:1::/48",     # NAT64 local-use prefix
))
# A label as inet_aton reads it: hex, octal or decimal.
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")


def _table(rows: tuple[tuple[str, str], ...]) -> tuple[tuple[Network, str], ...]:
    return tuple((ipaddress.ip_network(net), what) for net, what in rows)


_ALWAYS_DENIED_NETS = _table(_ALWAYS_DENIED)
_LOCAL_NETS = _table(_LOCAL)


class NetworkRefused(SourceRefused):
    """The network policy refuses an address a source would connect to. Not retried:
    the message names the address and the rule, never credentials."""


@dataclass(frozen=True)
class NetworkPolicy:
    """The rules above, ready to judge addresses. Build it with :meth:`from_config`."""

    allow: tuple[Network, ...] = ()
    deny: tuple[Network, ...] = ()
    local: bool = True              # loopback and private ranges allowed

    @classmethod
    def from_config(cls, cfg: SourceConfig, *, exposed: bool = False) -> "NetworkPolicy":
        """The policy ``cfg`` describes; ``exposed``: the service listens beyond
        loopback (what ``local_networks: auto`` follows). Bad entries: :class:`ConfigError`."""
        choice = cfg.local_networks
        if choice not in LOCAL_CHOICES:
            raise ConfigError(f"source.local_networks: expected one of {', '.join(LOCAL_CHOICES)}, got {choice!r}")
        local = choice == "allow" or (choice == "auto" and not exposed)
        return cls(_networks(cfg.allow_networks, "source.allow_networks"),
                   _networks(cfg.deny_networks, "source.deny_networks"), local)

    # -- judging addresses ---------------------------------------------------------------

    def verdict(self, address: Address) -> str | None:
        """Why ``address`` is refused, or None when a source may connect to it."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            # the same socket address as the IPv4 one, so judged as that one
            why = self.verdict(address.ipv4_mapped)
            return None if why is None else f"{address.ipv4_mapped} (IPv4-mapped), {why}"
        why = self._own_verdict(address)
        if why is None and isinstance(address, ipaddress.IPv6Address):
            for inner in _embedded_ipv4(address):
                inner_why = self._own_verdict(inner)
                if inner_why is not None:
                    return f"an address that embeds {inner}, {inner_why}"
        return why

    def check(self, address: Address) -> None:
        """Raise :class:`NetworkRefused` unless a source may connect to ``address``."""
        why = self.verdict(address)
        if why is not None:
            raise NetworkRefused(f"{address} is {why}")

    def _own_verdict(self, address: Address) -> str | None:
        explicit = self._explicit(address)
        if explicit is not None:
            return None if explicit else "refused by source.deny_networks"
        for net, what in _ALWAYS_DENIED_NETS:
            if address in net:
                return f"{what}, which the network policy always refuses (source.allow_networks can allow it)"
        if not self.local:
            for net, what in _LOCAL_NETS:
                if address in net:
                    return (f"{what}, which this service refuses (source.local_networks: deny, or auto "
                            "when the service listens beyond loopback); source.allow_networks can allow it")
        return None

    def _explicit(self, address: Address) -> bool | None:
        """True (allowed) or False (denied) by the longest matching listed prefix."""
        best: tuple[int, bool] | None = None
        for nets, allowed in ((self.deny, False), (self.allow, True)):
            for net in nets:
                if net.version == address.version and address in net:
                    if best is None or net.prefixlen > best[0]:
                        best = (net.prefixlen, allowed)
        return None if best is None else best[1]

    # -- hosts, names and URLs -------------------------------------------------------------

    def host_address(self, host: str) -> Address | None:
        """The address a URL's host is, if it is a literal (None: a name to resolve).

        Numeric hosts in any but the canonical notation are refused, naming what they spell.
        """
        shown = host if len(host) <= 64 else host[:64] + "..."
        if "%" in host:
            raise NetworkRefused(f"host '{shown}': zone ids and percent-encoding are not accepted in a host")
        if ":" in host:
            try:
                return ipaddress.IPv6Address(host)
            except ValueError:
                raise NetworkRefused(f"host '{shown}' is not a valid IPv6 address") from None
        name = host[:-1] if host.endswith(".") else host
        try:
            return ipaddress.IPv4Address(name)
        except ValueError:
            pass
        labels = name.split(".")
        if not _NUMBER.fullmatch(labels[-1]):
            return None                                   # a name
        spelled = _inet_aton(labels)
        if spelled is None:
            raise NetworkRefused(f"host '{shown}' looks like a numeric address but is not a valid one")
        why = self.verdict(spelled)
        if why is not None:
            raise NetworkRefused(f"host '{shown}' is {spelled} written another way: {why}")
        raise NetworkRefused(f"host '{shown}' is {spelled} written another way; write it as {spelled}")

    def addresses(self, host: str, port: int, resolve: Resolver) -> list[Address]:
        """Every address ``host`` stands for, each one checked: a literal as it is, a
        name by one call of ``resolve``. Connect only to these (never to the name).

        :class:`NetworkRefused` if any is refused; ``OSError`` if the name does not
        resolve (a fault like an unreachable host: the caller retries it).
        """
        literal = self.host_address(host)
        if literal is not None:
            self.check(literal)
            return [literal]
        found = list(dict.fromkeys(resolve(host, port)))
        if not found:
            raise OSError(f"{host} resolves to no address")
        for address in found:
            why = self.verdict(address)
            if why is not None:
                others = f" (one of {len(found)} addresses)" if len(found) > 1 else ""
                raise NetworkRefused(f"host '{host}' resolves to {address}{others}, {why}")
        return found

    def check_url(self, url: str, resolve: Resolver) -> list[Address]:
        """:meth:`addresses` for a network source URL already accepted by
        :func:`streamer.sources.urls.check_source` (its host and port)."""
        parts = urlsplit(url)
        return self.addresses(parts.hostname or "", parts.port or DEFAULT_PORTS[parts.scheme], resolve)


def system_resolver(host: str, port: int) -> list[Address]:
    """The system's answer for ``host`` (``getaddrinfo``, TCP), in its order."""
    found = []
    for family, _, _, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        if family in (socket.AF_INET, socket.AF_INET6):
            found.append(ipaddress.ip_address(str(sockaddr[0]).partition("%")[0]))
    return found


def connect(addresses: Sequence[Address], port: int, timeout_s: float) -> socket.socket:
    """A TCP connection to the first of ``addresses`` that answers: to the checked
    addresses themselves, so nothing is looked up again."""
    last: OSError = OSError("no address to connect to")
    for address in addresses:
        family = socket.AF_INET if address.version == 4 else socket.AF_INET6
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout_s)
        try:
            sock.connect((str(address), port))
        except OSError as e:
            sock.close()
            last = e
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise last


def beyond_loopback(host: str) -> bool:
    """Whether a listen address reaches beyond this machine's loopback (a name other
    than ``localhost`` counts as beyond: where it points can change)."""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return True


def _networks(entries: list[str], where: str) -> tuple[Network, ...]:
    nets = []
    for i, entry in enumerate(entries):
        try:
            nets.append(ipaddress.ip_network(str(entry).strip(), strict=False))
        except ValueError:
            raise ConfigError(f"{where}[{i}]: {entry!r} is not a network (CIDR such as 192.168.1.0/24 "
                              "or an address)") from None
    return tuple(nets)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries inside it (see the module doc)."""
    found = []
    if address in _EMBEDS_LOW_32[0] and int(address) > 1:          # not :: or ::1
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    elif any(address in net for net in _EMBEDS_LOW_32[1:]):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)                                # (server, client)
    return found


def _inet_aton(labels: list[str]) -> ipaddress.IPv4Address | None:
    """The address the BSD ``inet_aton`` reads from these labels (1 to 4 numbers, each
    hex, octal or decimal, the last filling the bytes left), or None if it reads none."""
    if not 1 <= len(labels) <= 4:
        return None
    numbers = []
    for label in labels:
        if not _NUMBER.fullmatch(label):
            return None
        if label[:2].lower() == "0x":
            numbers.append(int(label[2:] or "0", 16))
        elif len(label) > 1 and label[0] == "0":
            if not set(label) <= set("01234567"):
                return None
            numbers.append(int(label, 8))
        else:
            numbers.append(int(label))
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        return None
    value = last
    for i, n in enumerate(head):
        value |= n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)
