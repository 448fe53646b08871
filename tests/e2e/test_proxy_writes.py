"""Retries that cannot duplicate: writes through nginx (deploy/nginx.conf.template) to two
replicas that share one store.

Each replica is the real app behind a tiny WSGI wrapper started by this test: a request that
carries `X-Test-Stall: <name>` is handled normally (the write commits) and then, on the first
replica to claim <name>, held for STALL seconds before its answer leaves. nginx's read timeout
is shortened to 2 s so that the stall is a timeout. A create without a condition must then be
stored once (the client is told it may have been stored); a create with If-None-Exist may be
retried, and is still stored once. A write to a replica that refuses the connection is sent
to the other one.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import requests

from ..conftest import DATA, free_port, wait_ready
from .authoring_support import TOKEN, bearer, body_site_value_set
from .test_scale_out import find_nginx, nginx_config, stop

STALL = 6.0
READ_TIMEOUT = "2s"

STALLING_REPLICA = """
import os, sys, time
from pathlib import Path
from terminology.http.app import create_app
from terminology.http.server.workers import serve_production
from terminology.http.wsgi import drain
from terminology.settings import BUNDLED_CONTENT, Settings

port, stalls = int(sys.argv[1]), Path(sys.argv[2])
settings = Settings.from_env()
settings.host, settings.port, settings.workers, settings.threads = "127.0.0.1", port, 1, 4
settings.content_dirs = [BUNDLED_CONTENT, Path(sys.argv[3])]
app = create_app(settings)
inner = app.wsgi_app

def stalling(environ, start_response):
    name = environ.get("HTTP_X_TEST_STALL")
    if not name:
        return inner(environ, start_response)
    body = drain(inner(environ, start_response))  # handled: the write has committed
    try:
        os.close(os.open(stalls / name, os.O_CREAT | os.O_EXCL))  # the first replica only
    except FileExistsError:
        return [body]
    time.sleep(float(os.environ["TEST_STALL_SECONDS"]))
    return [body]

app.wsgi_app = stalling
serve_production(app, settings)
"""


class Replicas:
    """Two stalling replicas on one SQLite store, behind nginx."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.db = tmp / "shared.db"
        self.stalls = tmp / "stalls"
        self.stalls.mkdir()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []

    def start(self, name: str) -> None:
        port = free_port()
        log = self.tmp / f"{name}.log"
        env = {**os.environ, "TX_STORE": f"sqlite:///{self.db}", "TX_WRITE_TOKENS": TOKEN,
               "TX_DATA_DIR": str(self.tmp / "data"), "TX_CACHE_DIR": str(self.tmp / "cache"),
               "TX_LOG_LEVEL": "warning", "TEST_STALL_SECONDS": str(STALL)}
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-c", STALLING_REPLICA, str(port), str(self.stalls),
                                     str(DATA)], stdout=out, stderr=subprocess.STDOUT, env=env)
        self.procs.append(proc)
        self.ports.append(port)
        wait_ready(f"http://127.0.0.1:{port}/readyz", proc, log, timeout=60)

    def versions(self, rid: str) -> int:
        with sqlite3.connect(self.db) as db:
            return int(db.execute("SELECT count(*) FROM tx_resource_version WHERE id = ?", (rid,)).fetchone()[0])

    def stored(self, url: str) -> int:
        with sqlite3.connect(self.db) as db:
            return int(db.execute("SELECT count(*) FROM tx_resource WHERE url = ?", (url,)).fetchone()[0])


@pytest.fixture()
def proxy(tmp_path: Path) -> Iterator[tuple[str, Replicas]]:
    nginx = find_nginx()
    if nginx is None:
        pytest.skip("nginx not found (Debian: apt-get install nginx; .ci/run installs it)")
    replicas = Replicas(tmp_path)
    proc: subprocess.Popen[bytes] | None = None
    try:
        replicas.start("replica-1")
        replicas.start("replica-2")
        listen = free_port()
        conf = nginx_config(tmp_path, listen, replicas.ports)
        fragment = tmp_path / "terminology.conf"
        text = fragment.read_text()
        assert "proxy_read_timeout 60s" in text
        fragment.write_text(text.replace("proxy_read_timeout 60s", f"proxy_read_timeout {READ_TIMEOUT}"))
        out = (tmp_path / "nginx.out").open("wb")
        proc = subprocess.Popen([nginx, "-p", str(tmp_path), "-e", str(tmp_path / "nginx-error.log"),
                                 "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
        wait_ready(f"http://127.0.0.1:{listen}/readyz", proc, tmp_path / "nginx.out", timeout=10)
        yield f"http://127.0.0.1:{listen}/fhir", replicas
    finally:
        if proc is not None:
            stop(proc)
        for p in replicas.procs:
            stop(p)


def new_url() -> str:
    return f"http://example.test/fhir/ValueSet/proxied-{uuid.uuid4().hex[:8]}"


def post(base: str, url: str, **headers: str) -> requests.Response:
    return requests.post(f"{base}/ValueSet", data=orjson.dumps(body_site_value_set(url, ["spine"])),
                         headers={**bearer(TOKEN), "Connection": "close", **headers}, timeout=60)


def test_a_create_whose_replica_commits_then_stalls_is_stored_once(proxy: tuple[str, Replicas]) -> None:
    base, replicas = proxy
    url = new_url()
    resp = post(base, url, **{"X-Test-Stall": "plain-create"})
    assert resp.status_code == 504, resp.text
    assert resp.headers["Content-Type"].startswith("application/fhir+json")
    assert "may or may not have been stored" in resp.text
    time.sleep(STALL)  # the stalled replica answers nobody; nothing else arrives meanwhile
    assert replicas.stored(url) == 1


def test_an_update_whose_replica_commits_then_stalls_is_one_version(proxy: tuple[str, Replicas]) -> None:
    base, replicas = proxy
    created = post(base, new_url())
    assert created.status_code == 201
    vs = {**created.json(), "title": "changed"}
    resp = requests.put(f"{base}/ValueSet/{vs['id']}", data=orjson.dumps(vs), timeout=60,
                        headers={**bearer(TOKEN), "Connection": "close", "X-Test-Stall": "plain-update"})
    assert resp.status_code == 504, resp.text
    time.sleep(STALL)
    assert replicas.versions(vs["id"]) == 2  # the create and this update, not a repeat of it


def test_a_conditional_create_is_retried_and_still_stored_once(proxy: tuple[str, Replicas]) -> None:
    base, replicas = proxy
    url = new_url()
    resp = post(base, url, **{"X-Test-Stall": "conditional-create", "If-None-Exist": f"url={url}"})
    assert resp.status_code == 200, resp.text  # the retry found what the first attempt stored
    assert resp.json()["url"] == url
    assert replicas.stored(url) == 1


def test_a_write_to_a_replica_that_refuses_the_connection_goes_to_the_other(
        proxy: tuple[str, Replicas]) -> None:
    base, replicas = proxy
    replicas.procs[0].kill()
    replicas.procs[0].wait(timeout=20)
    urls = [new_url() for _ in range(4)]
    statuses = [post(base, url).status_code for url in urls]
    assert statuses == [201] * 4
    assert [replicas.stored(url) for url in urls] == [1] * 4
    # reads keep being retried as before
    assert requests.get(f"{base}/metadata", timeout=20).status_code == 200
