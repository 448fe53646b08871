"""Scale-out without containers: docker-compose.yml's topology on 127.0.0.1.

Two `terminology serve` replicas (gunicorn, as in the image) behind nginx configured from
deploy/nginx.conf.template. One replica is stopped with SIGTERM in the middle of a bounded
load; the client must see no failure and every answer must be right. A second test checks
gunicorn's graceful shutdown directly: a request in flight when SIGTERM arrives completes.
"""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import string
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from ..conftest import CPT_URL, REPO, free_port, param_value, wait_ready

TEMPLATE = REPO / "deploy" / "nginx.conf.template"
THREADS = 4
REQUESTS_PER_THREAD = 150  # bounded: 600 requests in all
STOP_AFTER = THREADS * REQUESTS_PER_THREAD // 3  # SIGTERM replica 1 after a third of them
DISPLAY_72126 = "Computed tomography, cervical spine; with contrast material"


def find_nginx() -> str | None:
    """The nginx binary (Debian puts it in /usr/sbin, which a non-root PATH may lack)."""
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if the process does not exit in time."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=25)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Replica:
    """One `terminology serve` process: its port, process and log file."""

    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def served(self, path_fragment: str) -> int:
        """How many access-log lines (terminology.access JSON) name `path_fragment`."""
        return sum(1 for line in self.log.read_text().splitlines()
                   if line.startswith("{") and path_fragment in line)


def start_replica(tmp: Path, name: str, cache: Path) -> Replica:
    """`terminology serve` on a free port: one gunicorn worker with four threads."""
    port = free_port()
    log = tmp / f"{name}.log"
    env = {**os.environ, "TX_CACHE_DIR": str(cache), "TX_LOG_LEVEL": "info"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "terminology.cli", "serve", "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1", "--threads", "4"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    return Replica(port, proc, log)


def nginx_config(tmp: Path, listen: int, upstreams: list[int]) -> Path:
    """deploy/nginx.conf.template filled in, wrapped in a main config that lives in `tmp`."""
    fragment = string.Template(TEMPLATE.read_text()).safe_substitute(
        TX_UPSTREAM_1=f"127.0.0.1:{upstreams[0]}", TX_UPSTREAM_2=f"127.0.0.1:{upstreams[1]}",
        TX_LISTEN=f"127.0.0.1:{listen}", TX_MAX_BODY="10m",
    )
    assert "${" not in fragment.replace("${VARIABLES}", ""), "template variable left unfilled"
    (tmp / "terminology.conf").write_text(fragment)
    # As root, nginx would switch its workers to `nobody`, who cannot enter pytest's tmp dir.
    user = "user root;" if os.geteuid() == 0 else ""
    main = f"""
{user}
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/terminology.conf;
}}
"""
    path = tmp / "nginx.conf"
    path.write_text(main)
    return path


@dataclass
class Tally:
    """What the client threads saw."""

    sent: int = 0
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    halfway: threading.Event = field(default_factory=threading.Event)

    def record(self, problem: str | None) -> None:
        with self.lock:
            self.sent += 1
            if problem:
                self.failures.append(problem)
            if self.sent >= STOP_AFTER:
                self.halfway.set()


def check_answer(kind: str, resp: requests.Response) -> str | None:
    """None when `resp` is the right answer to request `kind`, else what is wrong."""
    if resp.status_code != 200:
        return f"{kind}: HTTP {resp.status_code} {resp.text[:200]}"
    body: dict[str, Any] = resp.json()
    if kind.startswith("lookup") and param_value(body, "display") != DISPLAY_72126:
        return f"lookup: wrong display {param_value(body, 'display')!r}"
    if kind == "metadata" and (body.get("resourceType"), body.get("fhirVersion")) != (
            "CapabilityStatement", "4.0.1"):
        return f"metadata: unexpected {str(body)[:200]}"
    return None


LOOKUP_BODY: dict[str, Any] = {"resourceType": "Parameters", "parameter": [
    {"name": "coding", "valueCoding": {"system": CPT_URL, "code": "72126"}}]}


def send(session: requests.Session, base: str, kind: str) -> requests.Response:
    """One request: $lookup 72126 by GET or by POSTed Parameters, or metadata."""
    if kind == "lookup":
        return session.get(f"{base}/CodeSystem/$lookup", timeout=20,
                           params={"system": CPT_URL, "code": "72126"})
    if kind == "lookup-post":
        return session.post(f"{base}/CodeSystem/$lookup", json=LOOKUP_BODY, timeout=20,
                            headers={"Content-Type": "application/fhir+json"})
    return session.get(f"{base}/metadata", timeout=20)


def client_thread(base: str, tally: Tally) -> None:
    """REQUESTS_PER_THREAD requests on one keep-alive session, cycling through the kinds."""
    kinds = ("lookup", "metadata", "lookup-post")
    with requests.Session() as session:
        for i in range(REQUESTS_PER_THREAD):
            kind = kinds[i % len(kinds)]
            try:
                tally.record(check_answer(kind, send(session, base, kind)))
            except requests.RequestException as e:
                tally.record(f"{kind}: {type(e).__name__}: {e}")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One validation cache for this module's servers: only the first start validates."""
    return tmp_path_factory.mktemp("validated")


@pytest.fixture()
def topology(tmp_path: Path, cache: Path) -> Iterator[tuple[str, list[Replica]]]:
    """Two replicas and nginx in front of them; the base url through nginx."""
    nginx = find_nginx()
    if nginx is None:
        pytest.skip("nginx not found (Debian: apt-get install nginx; .ci/run installs it)")
    replicas = [start_replica(tmp_path, f"replica-{n}", cache) for n in (1, 2)]
    proxy: subprocess.Popen[bytes] | None = None
    try:
        for r in replicas:
            wait_ready(f"http://127.0.0.1:{r.port}/readyz", r.proc, r.log)
        listen = free_port()
        conf = nginx_config(tmp_path, listen, [r.port for r in replicas])
        nginx_log = tmp_path / "nginx.out"
        with nginx_log.open("wb") as out:
            proxy = subprocess.Popen([nginx, "-p", str(tmp_path), "-e", str(tmp_path / "nginx-error.log"),
                                      "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
        wait_ready(f"http://127.0.0.1:{listen}/readyz", proxy, nginx_log, timeout=10)
        yield f"http://127.0.0.1:{listen}/fhir", replicas
    finally:
        if proxy is not None:
            stop(proxy)
        for r in replicas:
            stop(r.proc)


def upstream_failures(error_log: Path) -> int:
    """How many times nginx's error log says an upstream connection failed."""
    if not error_log.exists():
        return 0
    return sum(1 for line in error_log.read_text().splitlines()
               if "[error]" in line and "upstream" in line)


def test_replica_stopped_mid_load_costs_the_client_no_request(
        topology: tuple[str, list[Replica]], record_property: Any) -> None:
    base, (first, second) = topology
    tally = Tally()
    threads = [threading.Thread(target=client_thread, args=(base, tally)) for _ in range(THREADS)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    assert tally.halfway.wait(timeout=60), "load never reached the point of stopping a replica"
    first.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(timeout=120)
    elapsed = time.perf_counter() - started
    rate = tally.sent / elapsed
    retried = upstream_failures(first.log.parent / "nginx-error.log")
    print(f"\nscale-out: {tally.sent} requests through nginx, {len(tally.failures)} failed, "
          f"{rate:.0f} requests/s; replica 1 stopped after {STOP_AFTER}, "
          f"{retried} upstream failures retried by nginx")
    record_property("requests_sent", tally.sent)
    record_property("failures", len(tally.failures))
    record_property("requests_per_second", round(rate, 1))

    assert tally.sent == THREADS * REQUESTS_PER_THREAD
    assert tally.failures == []
    # nginx did meet the stopped replica and retried on the other one.
    assert retried > 0
    # Replica 1 drained and exited cleanly; both replicas had taken a share of the load.
    assert first.proc.wait(timeout=25) == 0
    assert first.served("$lookup") > 0 and second.served("$lookup") > 0
    assert second.proc.poll() is None


SLOW_APP = """
import sys, time
from pathlib import Path
from terminology.http.app import create_app
from terminology.http.server.workers import serve_production
from terminology.settings import Settings

port, marker, cache = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
settings = Settings(host="127.0.0.1", port=port, workers=1, threads=2, cache_dir=cache)
app = create_app(settings)

@app.get("/slow")
def slow():
    marker.write_text("started")  # the request has reached the worker
    time.sleep(1.0)
    return "finished"

serve_production(app, settings)
"""


def test_sigterm_lets_in_flight_request_finish(tmp_path: Path, cache: Path) -> None:
    port = free_port()
    marker, log = tmp_path / "started", tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", SLOW_APP, str(port), str(marker), str(cache)],
            stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz", proc, log)
        answer: dict[str, Any] = {}
        client = threading.Thread(target=lambda: answer.update(
            resp=requests.get(f"http://127.0.0.1:{port}/slow", timeout=20)))
        client.start()
        deadline = time.monotonic() + 10
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.exists(), "the slow request never reached the worker"
        proc.send_signal(signal.SIGTERM)
        client.join(timeout=20)
        resp = answer["resp"]
        assert (resp.status_code, resp.text) == (200, "finished")
        assert proc.wait(timeout=25) == 0
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    finally:
        stop(proc)


def test_nginx_gzips_answers_over_1kb_and_revalidates_them(topology: tuple[str, list[Replica]]) -> None:
    base, _ = topology
    url = f"{base}/CodeSystem/$lookup?system={CPT_URL}&code=72126&_format=xml"
    plain = requests.get(url, headers={"Accept-Encoding": "identity"}, timeout=20)
    assert plain.status_code == 200 and "Content-Encoding" not in plain.headers and len(plain.content) > 1024
    zipped = requests.get(url, headers={"Accept-Encoding": "gzip"}, timeout=20, stream=True)
    assert zipped.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in zipped.headers["Vary"]
    wire = zipped.raw.read()
    assert len(wire) < len(plain.content) and gzip.decompress(wire) == plain.content
    again = requests.get(url, headers={"Accept-Encoding": "gzip", "If-None-Match": zipped.headers["ETag"]}, timeout=20)
    assert again.status_code == 304
