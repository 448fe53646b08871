"""Clear answers at the edges, against the real server: long URLs and headers, encoded bodies,
nosniff on every answer, an inline CPT code system without a version.

What granian answers itself (before the app sees the request) is checked too, so that a
change of its limits shows: a URL over about 64 kB is an empty 414, headers over its 408 kB
buffer (in practice about 1 MB; or more than 100 fields) an empty 431. The app's own limits are lower, so every
request granian passes on gets an OperationOutcome.
"""

from __future__ import annotations

import gzip
import socket

import pytest

from terminology.settings import Settings

from ..conftest import CPT_URL
from .conftest import DISPLAY_72126, FHIR_JSON, LOOKUP_72126, check_outcome, parameters, send

SETTINGS = Settings()
LOOKUP_BODY = parameters({"name": "system", "valueUri": CPT_URL}, {"name": "code", "valueCode": "72126"})


def raw_status(base: str, request: bytes) -> tuple[int, bytes]:
    """Status and raw answer of a hand-written HTTP/1.1 request (what requests cannot send)."""
    host, port = base.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1]), answer


# (query length, status, OperationOutcome from the app?)
URLS = [(SETTINGS.max_url_bytes - 200, 404, True),  # long, within the limit: the code is unknown
        (SETTINGS.max_url_bytes + 1, 414, True),
        (100_000, 414, False)]  # granian's own limit


@pytest.mark.parametrize(("length", "status", "from_app"), URLS, ids=["within", "past-limit", "granian"])
def test_long_urls(live_server: str, length: int, status: int, from_app: bool) -> None:
    path = f"/CodeSystem/$lookup?system={CPT_URL}&code=" + "9" * length
    answer = send(live_server, "GET", path)
    if from_app:
        if status == 414:
            check_outcome(answer, 414, "setting max_url_bytes", code="too-long")
        else:
            assert answer.status == status, answer.body[:200]
            assert answer.json()["resourceType"] == "OperationOutcome"
    else:
        assert answer.status == 414 and answer.body == b""


HEADERS = [(SETTINGS.max_header_bytes - 1000, 200, True), (SETTINGS.max_header_bytes + 1, 431, True),
           (2_000_000, 431, False)]


@pytest.mark.parametrize(("size", "status", "from_app"), HEADERS, ids=["within", "past-limit", "granian"])
def test_big_headers(live_server: str, size: int, status: int, from_app: bool) -> None:
    # a POST: the response cache answers repeated GETs before the app's checks
    answer = send(live_server, "POST", "/CodeSystem/$lookup", data=LOOKUP_BODY,
                  headers={"Content-Type": FHIR_JSON, "X-Padding": "p" * size})
    if not from_app:
        assert answer.status == 431 and answer.body == b""
    elif status == 431:
        check_outcome(answer, 431, "setting max_header_bytes", code="too-long")
    else:
        assert answer.status == 200 and DISPLAY_72126 in answer.body.decode()


def test_more_header_fields_than_granian_takes_is_its_431(live_server: str) -> None:
    fields = b"".join(b"X-F%d: v\r\n" % i for i in range(200))
    status, answer = raw_status(live_server, b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + fields
                                + b"Connection: close\r\n\r\n")
    assert status == 431


ZIP_BOMB = gzip.compress(b" " * (SETTINGS.max_body_bytes + 1))  # about 10 kB on the wire


@pytest.mark.parametrize(("encoding", "body", "status", "fragment"), [
    ("gzip", gzip.compress(LOOKUP_BODY), 200, ""),
    ("x-gzip", gzip.compress(LOOKUP_BODY), 200, ""),
    ("identity", LOOKUP_BODY, 200, ""),
    ("gzip", ZIP_BOMB, 413, "setting max_body_bytes"),
    ("gzip", gzip.compress(LOOKUP_BODY)[:-12], 400, "truncated"),
    ("gzip", LOOKUP_BODY, 400, "not valid gzip"),
    ("br", LOOKUP_BODY, 415, "Content-Encoding 'br'"),
    ("deflate", LOOKUP_BODY, 415, "Content-Encoding 'deflate'"),
], ids=["gzip", "x-gzip", "identity", "zip-bomb", "truncated", "not-gzip", "br", "deflate"])
def test_encoded_bodies(live_server: str, encoding: str, body: bytes, status: int, fragment: str) -> None:
    answer = send(live_server, "POST", "/CodeSystem/$lookup", data=body,
                  headers={"Content-Type": FHIR_JSON, "Content-Encoding": encoding})
    if status == 200:
        assert answer.status == 200, answer.body[:300]
        assert DISPLAY_72126 in answer.body.decode()
    else:
        check_outcome(answer, status, fragment)
    assert len(ZIP_BOMB) < 50_000


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", LOOKUP_72126, 200),
    ("GET", LOOKUP_72126, 200),  # the second time from the response cache
    ("GET", "/CodeSystem/$lookup?system=http://nowhere.test&code=x", 404),
    ("POST", "/ValueSet", 405),
    ("GET", "/metadata", 200),
    ("OPTIONS", "/ValueSet/$expand", 204),
    ("GET", "/../healthz", 200),
    ("GET", "/../", 200),  # the browser's home page (HTML)
])
def test_every_answer_says_nosniff(live_server: str, method: str, path: str, status: int) -> None:
    if path.startswith("/../"):  # outside /fhir
        answer = send(live_server.removesuffix("/fhir"), method, path.removeprefix("/.."))
    else:
        answer = send(live_server, method, path)
    assert answer.status == status, answer.body[:200]
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_inline_cpt_code_system_without_version_is_a_400(live_server: str) -> None:
    cpt = {"resourceType": "CodeSystem", "url": CPT_URL, "status": "active", "content": "fragment",
           "concept": [{"code": "72126", "display": "Something"}]}
    body = parameters({"name": "codeSystem", "resource": cpt}, {"name": "url", "valueUri": CPT_URL},
                      {"name": "code", "valueCode": "72126"})
    answer = send(live_server, "POST", "/CodeSystem/$validate-code", data=body,
                  headers={"Content-Type": FHIR_JSON})
    check_outcome(answer, 400, "no version", expression="codeSystem")
