"""streamer.sources.urls: the source policy on hostile, odd and good URLs, and on real files."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from streamer.sources.frames import SourceError
from streamer.sources.urls import (
    MEDIA_ROOT_ENV,
    SourceKind,
    SourceRefused,
    Transport,
    check_source,
    media_root_from,
    redact,
)

SECRET = "hunter2"

HOSTILE = [
    "",                                             # nothing
    "concat:/media/a.mp4|/etc/passwd",              # FFmpeg reads other files
    "subfile,,start,0,end,100,,:/etc/passwd",
    "subfile:/etc/passwd",
    "data:video/mp4;base64,AAAA",
    "pipe:0",
    "udp://0.0.0.0:5000",
    "tcp://127.0.0.1:22",
    "ftp://user:pass@host/a.mp4",
    "gopher://host/a",
    "unix:/var/run/docker.sock",
    "async:file:/etc/passwd",
    "cache:http://host/a.ts",
    "crypto:/etc/passwd",
    "hls+file:/etc/passwd",
    "hls+http://host/a.m3u8",
    "rtmp://host/live",
    "srt://host:9000",
    "sftp://host/a.mp4",
    "md5:/etc/passwd",
    "fd:3",
    "tee:/tmp/out",
    "ipfs://cid",
    "FiLe:///etc/passwd",                           # case tricks
    "FILE:/etc/passwd",
    "RTSP://cam/1",
    "Http://host/a.ts",
    " rtsp://cam/1",                                # whitespace, controls, invisibles
    "rtsp://cam/1 ",
    "\trtsp://cam/1",
    "rtsp://cam/1\n",
    "rtsp://cam/1\x00.mp4",
    "/media/a.mp4\x00",
    "rtsp://cam\r\nX-Injected: 1/1",
    "rtsp://cam/\x7f",
    "rtsp://cam/\u202e4pm.exe",
    "rtsp://cam/\u200b",
    "rtsp:cam/1",                                   # malformed network URLs
    "rtsp:/cam/1",
    "http:///a.ts",
    "rtsp://",
    "rtsp://cam:99999/1",
    "rtsp://cam:port/1",
    "rtsp://cam/my stream",
    "http://h\u00e9llo/a.ts",
    "http://host\\@evil/a.ts",
    f"rtsp://admin:{SECRET}@evil@cam/1",
    "file://otherhost/etc/passwd",                  # file URLs
    f"file://admin:{SECRET}@localhost/etc/passwd",
    "file:///media/a.mp4?x=1",
    "file:///media/a.mp4#frag",
    "file:///media/a.mp4%00.txt",
    "file:///media/%0a.mp4",
    "file:",
    "C:\\Windows\\win.ini",
    "x" * 5000,
]


@pytest.fixture
def media(tmp_path) -> Path:
    """A media root with a video, a subdirectory, and an outside file next to it."""
    root = tmp_path / "media"
    (root / "sub").mkdir(parents=True)
    (root / "a.mp4").write_bytes(b"x")
    (root / "sub" / "b.mp4").write_bytes(b"x")
    (tmp_path / "secret.mp4").write_bytes(b"x")
    return root


@pytest.mark.parametrize("url", HOSTILE, ids=lambda u: repr(u[:40]))
def test_hostile_and_odd_urls_are_refused(url, media):
    with pytest.raises(SourceRefused) as info:
        check_source(url, str(media))
    message = str(info.value)
    assert isinstance(info.value, SourceError)
    assert SECRET not in message and "pass@" not in message
    assert len(message) < 300 and not any(c in message for c in "\x00\r\n\t\u202e")


def test_at_least_thirty_hostile_urls():
    assert len(HOSTILE) >= 30


def test_refusals_say_why(media):
    def why(url: str, root: str | None = str(media)) -> str:
        with pytest.raises(SourceRefused) as info:
            check_source(url, root)
        return str(info.value)

    assert "scheme 'concat' is not allowed" in why("concat:a|b")
    assert "lower case" in why("FiLe:///etc/passwd")
    assert "control characters" in why("rtsp://cam/\x00")
    assert "whitespace" in why(" /media/a.mp4")
    assert "FFmpeg protocol" in why("subfile,,start,0,end,1,,:/etc/passwd")
    assert "invalid port" in why("rtsp://cam:99999/")
    assert "no host" in why("http:///a.ts")
    assert "outside the media root" in why("/etc/passwd")
    assert "no media root" in why("a.mp4", None)
    assert "only files on this host" in why("file://otherhost/x")


def test_credentials_are_never_echoed(media):
    with pytest.raises(SourceRefused) as info:
        check_source(f"rtsp://admin:{SECRET}@cam:99999/live", str(media))
    assert str(info.value) == "rtsp://***@cam:99999/live: has an invalid port"
    with pytest.raises(SourceRefused) as info:
        check_source(f"ftp://admin:{SECRET}@host/a.mp4", str(media))
    assert SECRET not in str(info.value) and "admin" not in str(info.value)
    spec = check_source(f"rtsp://admin:{SECRET}@cam/live?user=admin&password={SECRET}", None)
    assert SECRET not in spec.label and SECRET not in repr(spec)
    assert spec.label == "rtsp://***@cam/live?user=***&password=***"


@pytest.mark.parametrize("url,kind,protocols", [
    ("rtsp://cam.local:554/stream1", "rtsp", "rtsp,rtsps,rtp,udp,tcp,tls,srtp"),
    ("rtsps://cam/stream1", "rtsp", "rtsp,rtsps,rtp,udp,tcp,tls,srtp"),
    ("rtsp://admin:p%40ss@192.168.1.20/h264?channel=1", "rtsp", "rtsp,rtsps,rtp,udp,tcp,tls,srtp"),
    ("rtsp://[::1]:8554/live", "rtsp", "rtsp,rtsps,rtp,udp,tcp,tls,srtp"),
    ("http://127.0.0.1:8080/stream.ts", "http", "http,https,tcp,tls,crypto,hls"),
    ("https://cdn.example.com/live/index.m3u8?token=abc", "http", "http,https,tcp,tls,crypto,hls"),
])
def test_network_sources_are_accepted_as_given(url, kind, protocols):
    spec = check_source(url, None)  # no media root needed for network sources
    assert (spec.kind, spec.target, spec.av_options) == (kind, url, {"protocol_whitelist": protocols})


def test_a_specs_kind_is_its_member_and_writes_as_its_word(media):
    kinds = [check_source(u, str(media)).kind for u in ("rtsps://cam/s", "https://cdn/live.m3u8", "a.mp4")]
    assert kinds == [SourceKind.RTSP, SourceKind.HTTP, SourceKind.FILE]
    assert all(type(k) is SourceKind for k in kinds) and [str(k) for k in kinds] == ["rtsp", "http", "file"]
    assert [str(t) for t in Transport] == ["tcp", "udp"]   # the API's and the CLI's words for it


def test_files_inside_the_root(media):
    a, b = str(media / "a.mp4"), str(media / "sub" / "b.mp4")
    for url, want in [(a, a), ("a.mp4", a), ("sub/b.mp4", b), ("./sub/../a.mp4", a),
                      (f"{media}/sub/../a.mp4", a), (Path(b).as_uri(), b),
                      (f"file://localhost{a}", a), (f"file:{a}", a),
                      ("missing.mp4", str(media / "missing.mp4"))]:
        spec = check_source(url, str(media))
        assert (spec.kind, spec.target, spec.av_options) == ("file", want, {"protocol_whitelist": "file"}), url


def test_dotdot_escape_is_refused(media):
    for url in ["../secret.mp4", "sub/../../secret.mp4", f"{media}/../secret.mp4",
                f"file://{media}/sub/%2E%2E/%2E%2E/secret.mp4", "/etc/passwd", "/"]:
        with pytest.raises(SourceRefused, match="outside the media root"):
            check_source(url, str(media))


def test_symlink_escape_is_refused(media, tmp_path):
    (media / "link.mp4").symlink_to(tmp_path / "secret.mp4")
    (media / "linkdir").symlink_to(tmp_path)
    (media / "inside.mp4").symlink_to(media / "sub" / "b.mp4")
    # refused as what it is, with where it points: the operator who made the link can fix it
    cases = {"link.mp4": f"link.mp4 is a symbolic link to {tmp_path / 'secret.mp4'}",
             str(media / "link.mp4"): f"{media / 'link.mp4'} is a symbolic link to {tmp_path / 'secret.mp4'}",
             "linkdir/secret.mp4": f"linkdir is a symbolic link to {tmp_path}",
             (media / "linkdir").as_uri(): f"{media / 'linkdir'} is a symbolic link to {tmp_path}"}
    for url, link in cases.items():
        with pytest.raises(SourceRefused) as info:
            check_source(url, str(media))
        assert str(info.value).endswith(f": {link}, outside the media root"), str(info.value)
    assert check_source("inside.mp4", str(media)).target == str(media / "sub" / "b.mp4")


def test_a_media_root_that_is_not_a_directory_is_a_config_error(tmp_path, monkeypatch):
    from streamer.config import ConfigError
    from streamer.sources.urls import MEDIA_ROOT_ENV, check_media_root

    monkeypatch.delenv(MEDIA_ROOT_ENV, raising=False)
    (tmp_path / "file").write_text("x")
    assert check_media_root(str(tmp_path)) == str(tmp_path) and check_media_root(None) is None
    with pytest.raises(ConfigError, match=f"^media_root: {tmp_path / 'nope'} does not exist$"):
        check_media_root(str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match=f"^media_root: {tmp_path / 'file'} is not a directory$"):
        check_media_root(str(tmp_path / "file"))
    monkeypatch.setenv(MEDIA_ROOT_ENV, str(tmp_path / "gone"))     # the variable wins, and is named
    with pytest.raises(ConfigError, match=f"^\\${MEDIA_ROOT_ENV}: {tmp_path / 'gone'} does not exist$"):
        check_media_root(str(tmp_path))


def test_root_given_through_a_symlink(media, tmp_path):
    (tmp_path / "root-link").symlink_to(media)
    assert check_source("a.mp4", str(tmp_path / "root-link")).target == str(media / "a.mp4")
    with pytest.raises(SourceRefused):
        check_source(str(tmp_path / "secret.mp4"), str(tmp_path / "root-link"))


def test_slash_root_allows_every_file_relative_to_cwd(media, monkeypatch):
    assert check_source("/etc/hostname", "/").target == os.path.realpath("/etc/hostname")
    monkeypatch.chdir(media / "sub")
    assert check_source("b.mp4", "/").target == str(media / "sub" / "b.mp4")
    assert check_source("../a.mp4", "/").target == str(media / "a.mp4")


def test_missing_root_and_no_root(media):
    with pytest.raises(SourceRefused, match="not a directory"):
        check_source("a.mp4", str(media / "nope"))
    with pytest.raises(SourceRefused, match=MEDIA_ROOT_ENV):
        check_source(str(media / "a.mp4"), None)


def test_media_root_from_environment(monkeypatch):
    monkeypatch.delenv(MEDIA_ROOT_ENV, raising=False)
    assert media_root_from("/srv/media") == "/srv/media"
    assert media_root_from(None) is None
    monkeypatch.setenv(MEDIA_ROOT_ENV, "/data")
    assert media_root_from("/srv/media") == "/data"
    assert media_root_from(None) == "/data"
    monkeypatch.setenv(MEDIA_ROOT_ENV, "")
    assert media_root_from("/srv/media") == "/srv/media"


@pytest.mark.parametrize("url,shown", [
    ("rtsp://u:p@cam:554/x?token=abc&ch=1#frag", "rtsp://***@cam:554/x?token=***&ch=***"),
    ("rtsp://user:pa/ss@host/live", "rtsp://***@host/live"),
    ("http://host/a.ts", "http://host/a.ts"),
    ("https://host/a.m3u8?sig", "https://host/a.m3u8?sig=***"),
    ("/media/a.mp4", "/media/a.mp4"),
])
def test_redact(url, shown):
    assert redact(url) == shown
