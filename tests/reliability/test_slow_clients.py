"""Slow and stalled clients. granian gives a WSGI app the body as a blocking stream with no
read timeout, so the server alone cannot bound a stalled upload: the deployed stack puts
nginx in front (deploy/nginx.conf.template: whole bodies buffered before they are passed on,
client_body_timeout 10 s). These tests hold 50 stalled uploads open against that stack and
check that normal requests are answered meanwhile, and that the stalled ones are closed.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

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
    port = int(url.rsplit(":", 1)[1])
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=CLIENT_BODY_TIMEOUT + 10)
        sock.sendall(STALLED_REQUEST)
        socks.append(sock)
    return socks


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


def test_standalone_server_stalls_are_bounded_only_by_its_threads(tmp_path: Path) -> None:
    """What the standalone server does (why nginx must face the internet, not granian): a
    stalled upload holds one thread; the answer to a normal request depends on free threads."""
    with running_server(tmp_path, args=("--workers", "1", "--threads", "4")) as (base, _proc):
        port = int(base.split(":")[2].split("/")[0])
        socks = stall(f"http://127.0.0.1:{port}", 2)  # fewer than the threads: still served
        try:
            resp = requests.get(f"{base}{LOOKUP_72126}", timeout=5, headers={"Connection": "close"})
            assert resp.status_code == 200
        finally:
            for sock in socks:
                sock.close()
