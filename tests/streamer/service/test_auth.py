import base64

from streamer.service.auth import token_ok

TOKEN = "s3cret-Tok"


def _basic(raw: bytes) -> dict:
    return {"authorization": "Basic " + base64.b64encode(raw).decode()}


def test_bearer_or_basic_with_the_token_as_password_and_nothing_else():
    accepted = [{"authorization": f"Bearer {TOKEN}"}, {"authorization": f"bearer  {TOKEN} "},
                _basic(f"anyone:{TOKEN}".encode()), _basic(f":{TOKEN}".encode()),
                {"authorization": "basic " + base64.b64encode(f"u:{TOKEN}".encode()).decode()}]
    refused = [{}, {"authorization": ""}, {"authorization": f"Basic {TOKEN}"},          # not base64
               _basic(TOKEN.encode()),                                                   # no user:password
               _basic(f"{TOKEN}:x".encode()),                                            # the token as user name
               _basic(f"u:{TOKEN}x".encode()), _basic(f"u:{TOKEN[:-1]}".encode()), _basic(b"u:"),
               _basic(b"u:\xff\xfe"),                                                    # not UTF-8
               {"authorization": "Basic " + base64.b64encode(f"u:{TOKEN}".encode()).decode() + "!"},
               {"authorization": f"Digest {TOKEN}"}, {"authorization": f"Bearer {TOKEN}x"}]
    assert [token_ok(h, TOKEN) for h in accepted] == [True] * len(accepted)
    assert [token_ok(h, TOKEN) for h in refused] == [False] * len(refused)
