"""Slow and stalled clients, against the real server: standalone (the server bounds them
itself, http/server/slow_clients.py: header_timeout, body_timeout, body_threads) and behind nginx
as deployed (deploy/nginx.conf.template: whole bodies buffered before they are passed on,
client_body_timeout 10 s). Each holds stalled requests open and checks that normal requests
are answered meanwhile and that the stalled ones are answered or closed in time.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator

import orjson
import pytest
import requests

from ..conftest import free_port, running_server, wait_ready
from ..e2e.test_scale_out import find_nginx, nginx_config, stop
from .conftest import DISPLAY_72126, FHIR_JSON, LOOKUP_72126, parameters

STALLED = 50
CLIENT_BODY_TIMEOUT = 10  # deploy/nginx.conf.template
STALLED_REQUEST = (b"POST /fhir/CodeSystem/$lookup HTTP/1.1\r\nHost: t\r\nContent-Type: " + FHIR_JSON.encode()
                   + b"\r\nContent-Length: 1000\r\n\r\n" + b'{"resourceType"')


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server (granian, 2 workers x 4 threads) behind nginx as deployed; nginx's url."""
    nginx = find_nginx()
    if nginx is None:
        pytest.skip("nginx not found (Debian: apt-get install nginx; .ci/run installs it)")
    tmp = tmp_path_factory.mktemp("slow")
    with running_server(tmp) as (base, _proc):
        port = int(base.split(":")[2].split("/")[0])
        listen = free_port()
        conf = nginx_config(tmp, listen, [port, port])
        log = tmp / "nginx.out"
        with log.open("wb") as out:
            proxy = subprocess.Popen([nginx, "-p", str(tmp), "-e", str(tmp / "nginx-error.log"), "-c", str(conf)],
                                     stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_ready(f"http://127.0.0.1:{listen}/readyz", proxy, log, timeout=10)
            yield f"http://127.0.0.1:{listen}"
        finally:
            stop(proxy)


def stall(url: str, count: int) -> list[socket.socket]:
    """`count` uploads that declare 1000 bytes and send 15."""
    return open_stalled(url, count, STALLED_REQUEST, CLIENT_BODY_TIMEOUT + 10)


def test_fifty_stalled_uploads_leave_normal_requests_answered_within_a_second(proxied: str) -> None:
    socks = stall(proxied, STALLED)
    try:
        time.sleep(0.5)  # every stalled upload is open and waiting
        for _ in range(5):
            started = time.monotonic()
            got = requests.get(f"{proxied}/fhir{LOOKUP_72126}", timeout=5)
            posted = requests.post(f"{proxied}/fhir/CodeSystem/$lookup", timeout=5,
                                   headers={"Content-Type": FHIR_JSON},
                                   data=parameters({"name": "system", "valueUri": "http://www.ama-assn.org/go/cpt"},
                                                   {"name": "code", "valueCode": "72126"}))
            assert time.monotonic() - started < 1.0
            assert got.status_code == posted.status_code == 200
            assert DISPLAY_72126 in got.text and DISPLAY_72126 in posted.text
        # the proxy closes the stalled connections once its client_body_timeout passes (nginx
        # sends no 408 answer then; it logs one)
        started = time.monotonic()
        for sock in socks:
            assert sock.recv(4096) == b""
        assert time.monotonic() - started < CLIENT_BODY_TIMEOUT + 5
    finally:
        for sock in socks:
            sock.close()


def test_proxy_errors_are_operation_outcomes(proxied: str) -> None:
    long_url = requests.get(f"{proxied}/fhir/CodeSystem/$lookup?code=" + "9" * 40_000, timeout=5)
    assert long_url.status_code == 414
    assert long_url.headers["Content-Type"] == "application/fhir+json"
    assert long_url.json()["issue"][0]["code"] == "too-long"
    big_body = requests.post(f"{proxied}/fhir/CodeSystem/$lookup", data=b" " * (11 * 1024 * 1024),
                             headers={"Content-Type": FHIR_JSON}, timeout=10)
    assert big_body.status_code == 413
    assert big_body.json()["resourceType"] == "OperationOutcome"


STANDALONE_TIMEOUT = 2.0  # body_timeout and header_timeout of the standalone server below
STALLED_HEADERS = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: "  # never ends


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The production server alone (granian, 2 workers x 4 threads), short timeouts; its url."""
    env = {"TX_BODY_TIMEOUT": str(STANDALONE_TIMEOUT), "TX_HEADER_TIMEOUT": str(STANDALONE_TIMEOUT)}
    with running_server(tmp_path_factory.mktemp("standalone"), env=env,
                        args=("--workers", "2", "--threads", "4")) as (base, _proc):
        yield base.removesuffix("/fhir")


def open_stalled(url: str, count: int, request: bytes,
                 timeout: float = STANDALONE_TIMEOUT + 10) -> list[socket.socket]:
    """`count` connections that each send `request` and then nothing more."""
    port = int(url.rsplit(":", 1)[1])
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        sock.sendall(request)
        socks.append(sock)
    return socks


def read_until_closed(sock: socket.socket, deadline: float) -> bytes:
    """Everything the server sends on `sock` until it closes it (or `deadline` passes)."""
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
    return data


def read_answer(sock: socket.socket, deadline: float) -> bytes:
    """One whole HTTP answer on `sock` (its head and Content-Length bytes of body), or
    what arrived of it by `deadline` or until the server closed the connection."""
    data = b""
    while time.monotonic() < deadline:
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            if len(body) >= length:
                break
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
    return data


def test_standalone_server_answers_normal_requests_within_a_second_past_stalled_clients(
        standalone: str) -> None:
    opened = time.monotonic()
    socks = open_stalled(standalone, STALLED, STALLED_HEADERS) + open_stalled(standalone, STALLED, STALLED_REQUEST)
    try:
        time.sleep(0.3)  # every stalled request is open and waiting
        for code in ("72125", "72126", "72127"):
            started = time.monotonic()
            got = requests.get(f"{standalone}/fhir/CodeSystem/$lookup", timeout=5,
                               params={"system": "http://www.ama-assn.org/go/cpt", "code": code})
            got_after = time.monotonic() - started
            started = time.monotonic()
            posted = requests.post(f"{standalone}/fhir/CodeSystem/$lookup", timeout=5,
                                   headers={"Content-Type": FHIR_JSON},
                                   data=parameters({"name": "system", "valueUri": "http://www.ama-assn.org/go/cpt"},
                                                   {"name": "code", "valueCode": code}))
            posted_after = time.monotonic() - started
            assert got.status_code == posted.status_code == 200, (got.text[:300], posted.text[:300])
            assert got_after < 1.0 and posted_after < 1.0, (got_after, posted_after)
        assert time.monotonic() - opened < STANDALONE_TIMEOUT  # all of it while they stalled
    finally:
        for sock in socks:
            sock.close()


def test_standalone_server_answers_a_stalled_body_with_a_408_outcome_within_body_timeout(
        standalone: str) -> None:
    socks = open_stalled(standalone, STALLED, STALLED_REQUEST)
    started = time.monotonic()
    try:
        for sock in socks:
            answer = read_answer(sock, started + STANDALONE_TIMEOUT + 3)
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408"), answer[:300]
            assert b"application/fhir+json" in head.lower()
            outcome = orjson.loads(body)
            assert outcome["resourceType"] == "OperationOutcome"
            assert outcome["issue"][0]["code"] == "timeout"
            assert "body_timeout" in outcome["issue"][0]["details"]["text"]
        assert time.monotonic() - started < STANDALONE_TIMEOUT + 2
    finally:
        for sock in socks:
            sock.close()


def test_standalone_server_closes_a_header_block_stalled_past_header_timeout(standalone: str) -> None:
    socks = open_stalled(standalone, STALLED, STALLED_HEADERS)
    started = time.monotonic()
    try:
        for sock in socks:
            answer = read_until_closed(sock, started + STANDALONE_TIMEOUT + 5)
            assert not answer.startswith(b"HTTP/1.1 2"), answer[:200]  # closed, never served
        closed_after = time.monotonic() - started
        assert STANDALONE_TIMEOUT - 0.5 < closed_after < STANDALONE_TIMEOUT + 4, closed_after
    finally:
        for sock in socks:
            sock.close()


def test_standalone_server_reads_a_slow_but_steady_body_within_body_timeout(standalone: str) -> None:
    body = parameters({"name": "system", "valueUri": "http://www.ama-assn.org/go/cpt"},
                      {"name": "code", "valueCode": "72126"})
    head = (b"POST /fhir/CodeSystem/$lookup HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
            b"Content-Type: " + FHIR_JSON.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body))
    (sock,) = open_stalled(standalone, 1, head)
    try:
        for i in range(0, len(body), len(body) // 4 + 1):  # four pieces, 0.2 s apart
            time.sleep(0.2)
            sock.sendall(body[i:i + len(body) // 4 + 1])
        answer = read_answer(sock, time.monotonic() + 5)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
        assert DISPLAY_72126.encode() in answer
    finally:
        sock.close()
