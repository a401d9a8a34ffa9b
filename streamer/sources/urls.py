"""Which source URLs may be opened: the policy, applied before anything is opened.

The service takes source URLs from the network, and FFmpeg opens nearly anything it is
handed: other files through ``concat:``, ``subfile:`` or a playlist, ``pipe:`` and
``unix:`` endpoints, raw ``tcp:``/``udp:`` sockets, inline ``data:``. So a URL is
allowed only when it is plainly one of the few kinds of source the service reads:

- ``rtsp://`` / ``rtsps://`` cameras and ``http://`` / ``https://`` streams (MPEG-TS,
  HLS, ...). FFmpeg gets a ``protocol_whitelist`` so that nothing it opens on the
  stream's behalf (an RTP socket, an HLS segment or key) can be a local file or a
  protocol outside the list.
- Local files, as bare paths or ``file:`` URLs, only inside a media root: the fully
  resolved path (symlinks followed, ``..`` collapsed) must lie under the resolved root.
  No root means no local files. ``"/"`` allows every file (``facestream analyze``).
  A symlink that leads out is refused as what it is, with where it points (the operator
  who made it can tell a link to fix from a path to refuse); a root that is not a
  directory is a configuration error at start (:func:`check_media_root`).

Refusals say why. They never repeat credentials: a URL is shown by :func:`redact`, which
masks the user-info and query values, and a refused scheme is named without the rest.

Which *addresses* a network source may reach is not decided here but by
:mod:`streamer.sources.netpolicy`, and enforced where each connection is made
(:mod:`streamer.sources.gateway`).
"""
from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import unquote, urlsplit

from streamer.config import ConfigError
from streamer.sources.frames import SourceError

MEDIA_ROOT_ENV = "FACESTREAM_MEDIA_ROOT"


class SourceKind(StrEnum):
    """The kinds of source the service reads: what decides how a source is opened (a file,
    or a live stream through the gateway) and what FFmpeg may open on its behalf."""

    FILE = "file"
    RTSP = "rtsp"     # rtsp:// and rtsps:// cameras
    HTTP = "http"     # http:// and https:// streams (MPEG-TS, HLS, ...)


class Transport(StrEnum):
    """How RTSP's media travels (a stream's ``transport`` option: the API's ``options``,
    ``facestream submit --transport``). UDP is refused unless ``source.rtsp_udp``: the
    server then picks endpoints the network policy cannot hold."""

    TCP = "tcp"       # interleaved in the RTSP connection, which the gateway checks
    UDP = "udp"


# Kind of source for each allowed scheme; anything else is refused.
_KINDS = {"rtsp": SourceKind.RTSP, "rtsps": SourceKind.RTSP, "http": SourceKind.HTTP, "https": SourceKind.HTTP,
          "file": SourceKind.FILE}
# What FFmpeg may open while reading each kind (nested opens inherit the list).
_PROTOCOLS = {SourceKind.RTSP: "rtsp,rtsps,rtp,udp,tcp,tls,srtp",
              SourceKind.HTTP: "http,https,tcp,tls,crypto,hls",
              SourceKind.FILE: "file"}
_MAX_LENGTH = 4096
# FFmpeg reads everything before the first ':' as a protocol name when it is made of
# these characters (and "subfile," starts one too), so that is what counts as a scheme.
_SCHEME = re.compile(r"^([A-Za-z0-9+.-]+):")
_PROTOCOL_WITH_ARGS = re.compile(r"^[A-Za-z0-9+.-]+,.*:")
# RFC 3986 characters; anything else (spaces, backslashes, non-ASCII) makes parsers
# disagree about where the host ends, so a network URL must be written with these only.
_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")


class SourceRefused(SourceError):
    """The URL is not an allowed source; the message says why, without credentials."""


@dataclass(frozen=True)
class SourceSpec:
    """A checked source: what to open and how.

    ``target`` is the absolute resolved path of a file, or the URL of a network source
    exactly as given (credentials included: it is what gets opened, never shown, and
    left out of the repr).
    ``av_options`` are FFmpeg options to pass to ``av.open`` (copy before adding to
    them); ``label`` is how to name the source in messages, logs and events.
    """

    kind: SourceKind
    target: str = field(repr=False)
    label: str
    av_options: dict[str, str] = field(default_factory=dict)


def check_source(url: str, media_root: str | None) -> SourceSpec:
    """The spec for ``url`` if policy allows it, else :class:`SourceRefused`.

    ``media_root`` is the directory local files must lie in, and relative paths are
    taken from it; ``"/"`` allows every file (relative paths then start at the working
    directory) and None refuses every local file.
    """
    if not isinstance(url, str) or not url:
        raise SourceRefused("empty source URL")
    if len(url) > _MAX_LENGTH:
        raise SourceRefused(f"source URL refused: longer than {_MAX_LENGTH} characters")
    if _has_control(url):
        raise SourceRefused("source URL refused: contains control characters")
    if url != url.strip():
        raise SourceRefused("source URL refused: leading or trailing whitespace")
    match = _SCHEME.match(url)
    if match is None:
        if _PROTOCOL_WITH_ARGS.match(url):
            raise SourceRefused("source URL refused: looks like an FFmpeg protocol with arguments")
        return _local_file(url, url, media_root)
    scheme = match.group(1)
    if scheme not in _KINDS:
        shown = scheme if len(scheme) <= 16 else scheme[:16] + "..."
        if scheme.lower() in _KINDS:
            raise SourceRefused(f"source URL refused: scheme '{shown}' must be written in lower case")
        raise SourceRefused(f"source URL refused: scheme '{shown}' is not allowed "
                            f"(allowed: {', '.join(_KINDS)}, or a path)")
    if scheme == "file":
        return _file_url(url, media_root)
    return _network(url, scheme)


def media_root_from(config_value: str | None) -> str | None:
    """The media root in force: ``$FACESTREAM_MEDIA_ROOT`` when set and not empty
    (deployments set it without editing config), else the configured value."""
    return os.environ.get(MEDIA_ROOT_ENV) or config_value


def check_media_root(config_value: str | None) -> str | None:
    """The media root in force (:func:`media_root_from`), checked when the service starts:
    one that does not exist, or is not a directory, is a configuration mistake
    (:class:`~streamer.config.ConfigError`), not a refusal of every file submitted later."""
    root = media_root_from(config_value)
    if root is None:
        return None
    if not os.path.isdir(root):
        named = f"${MEDIA_ROOT_ENV}" if os.environ.get(MEDIA_ROOT_ENV) else "media_root"
        what = "is not a directory" if os.path.exists(root) else "does not exist"
        raise ConfigError(f"{named}: {root} {what}")
    return root


def redact(url: str) -> str:
    """``url`` fit to show: everything before the last '@' of the address (user-info,
    even when a password holds an unencoded '/') becomes ``***``, query values become
    ``***`` and the fragment goes. Paths (no ``://``) are returned unchanged."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    address, _, query = rest.partition("#")[0].partition("?")
    if "@" in address:
        address = "***@" + address.rpartition("@")[2]
    if query:
        keys = [pair.partition("=")[0] for pair in query.split("&")]
        address += "?" + "&".join(f"{k}=***" if k else "***" for k in keys)
    return f"{scheme}://{address}"


def _has_control(text: str) -> bool:
    """C0 and C1 controls, DEL, and the invisible format characters (bidi overrides,
    zero-width joiners) that make a URL read differently from what it is."""
    return any(unicodedata.category(c) in ("Cc", "Cf") for c in text)


def _network(url: str, scheme: str) -> SourceSpec:
    if not url.startswith(f"{scheme}://"):
        raise SourceRefused(f"source URL refused: {scheme} URLs must start with {scheme}://")
    label = redact(url) if _URL_CHARS.fullmatch(url) else f"{scheme}://..."
    if not _URL_CHARS.fullmatch(url):
        raise SourceRefused(f"{label}: contains characters not allowed in a URL "
                            f"(spaces and non-ASCII must be percent-encoded)")
    try:
        parts = urlsplit(url)
        parts.hostname  # parses the host part: brackets that open no IPv6 address fail here
    except ValueError:
        raise SourceRefused(f"{label}: has a malformed host") from None
    if parts.netloc.count("@") > 1:
        # FFmpeg splits credentials at the first '@', Python at the last: refuse both readings.
        raise SourceRefused(f"{label}: more than one '@' before the host")
    if not parts.hostname:
        raise SourceRefused(f"{label}: has no host")
    try:
        parts.port
    except ValueError:
        raise SourceRefused(f"{label}: has an invalid port") from None
    kind = _KINDS[scheme]
    return SourceSpec(kind, url, label, {"protocol_whitelist": _PROTOCOLS[kind]})


def _file_url(url: str, media_root: str | None) -> SourceSpec:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise SourceRefused("file URL refused: only files on this host (file:///path) are supported")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise SourceRefused("file URL refused: a file URL takes no query or fragment")
    path = unquote(parts.path)
    if not path or _has_control(path):
        raise SourceRefused("file URL refused: empty path or encoded control characters")
    return _local_file(path, path, media_root)


def _link_out(base: str, path: str, root: str) -> tuple[str, str] | None:
    """The first symlink on ``path`` (from ``base``) that leads out of ``root``: the path
    as written up to it, and what the link says; None when no link does."""
    absolute = os.path.isabs(path)
    here = os.sep if absolute else base
    parts = [p for p in os.path.normpath(path).split(os.sep) if p]
    for i, part in enumerate(parts):
        here = os.path.join(here, part)
        if os.path.islink(here) and os.path.commonpath([root, os.path.realpath(here)]) != root:
            return here if absolute else os.path.join(*parts[:i + 1]), os.readlink(here)
    return None


def _local_file(path: str, shown: str, media_root: str | None) -> SourceSpec:
    if media_root is None:
        raise SourceRefused(f"{shown}: local files are not accepted here "
                            f"(no media root is configured; see {MEDIA_ROOT_ENV})")
    root = os.path.realpath(media_root)
    if not os.path.isdir(root):
        raise SourceRefused(f"{shown}: the configured media root is not a directory")
    # Relative paths are taken from the root, except that with "/" (every file allowed:
    # the command line) they mean what they mean to the user, relative to the cwd.
    base = os.getcwd() if root == os.sep else root
    real = os.path.realpath(os.path.join(base, path))
    if os.path.commonpath([root, real]) != root:
        link = _link_out(base, path, root)
        if link is not None:
            name, target = link
            raise SourceRefused(f"{shown}: {name} is a symbolic link to {target}, outside the media root")
        raise SourceRefused(f"{shown}: outside the media root")
    return SourceSpec(SourceKind.FILE, real, shown, {"protocol_whitelist": _PROTOCOLS[SourceKind.FILE]})
