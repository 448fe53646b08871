"""The real server as an operator runs it: metrics across workers, JSON logs, live reload.

One `terminology serve` (granian, two workers) on 127.0.0.1 over a content folder of its
own, so that the tests can change the content and reload it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import requests

from terminology.http.metrics import FLUSH_SECONDS
from tests.conftest import free_port, wait_ready

VS_URL = "http://example.test/fhir/ValueSet/reloadable"
ADMIN_TOKEN = "test-admin-token-0123456789"
CPT = "http://www.ama-assn.org/go/cpt"


def value_set(version: str) -> bytes:
    """A small ValueSet whose version tells which content a worker serves."""
    return orjson.dumps({
        "resourceType": "ValueSet", "id": "reloadable", "url": VS_URL, "version": version,
        "status": "active",
        "compose": {"include": [{"system": "http://hl7.org/fhir/administrative-gender"}]},
    })


@dataclass
class Server:
    """The running server: its root url, process, log, content folder and pid file."""

    root: str
    proc: subprocess.Popen[bytes]
    log: Path
    content: Path
    pid_file: Path

    def log_lines(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if line.strip()]

    def served_version(self) -> str:
        """The version of the reloadable ValueSet, on a fresh connection."""
        resp = requests.get(f"{self.root}/fhir/ValueSet", params={"url": VS_URL}, timeout=10,
                            headers={"Connection": "close"})
        resp.raise_for_status()
        return str(resp.json()["entry"][0]["resource"]["version"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("ops")
    content = tmp / "content"
    content.mkdir()
    (content / "vs.json").write_bytes(value_set("1"))
    port, log, pid_file = free_port(), tmp / "server.log", tmp / "server.pid"
    env = {**os.environ, "TX_CACHE_DIR": str(tmp / "cache"), "TX_ADMIN_TOKEN": ADMIN_TOKEN,
           "TX_WORKERS": "2", "TX_THREADS": "4"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "terminology.cli", "serve", "--host", "127.0.0.1",
             "--port", str(port), "--content", str(content), "--pid-file", str(pid_file)],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    root = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{root}/readyz", proc, log)
        yield Server(root, proc, log, content, pid_file)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def scrape(root: str) -> dict[str, float]:
    """GET /metrics as {'name{labels}': value} (comments dropped)."""
    resp = requests.get(f"{root}/metrics", timeout=10)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    out: dict[str, float] = {}
    for line in resp.text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def counter(metrics: dict[str, float], name: str, **labels: str) -> float:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return metrics.get(f"{name}{{{inner}}}" if labels else name, 0.0)


def replaced_workers(server: Server) -> int:
    """How many old workers granian has stopped after replacing them (its own log lines)."""
    return sum(1 for line in server.log_lines() if "Stopped old worker-" in line)


def wait_for_version(server: Server, version: str, replaced_before: int,
                     timeout: float = 40) -> None:
    """Until both workers were replaced, then check that fresh connections serve `version`."""
    deadline = time.monotonic() + timeout
    while replaced_workers(server) < replaced_before + 2:
        assert time.monotonic() < deadline, "the workers were not replaced"
        time.sleep(0.1)
    assert {server.served_version() for _ in range(6)} == {version}


def test_metrics_count_a_known_request_mix_across_both_workers(server: Server) -> None:
    before = scrape(server.root)
    for code in ("72125", "72126", "72127", "70450", "70460"):
        # A new connection each time, so that both workers take a share.
        resp = requests.get(f"{server.root}/fhir/CodeSystem/$lookup", timeout=10,
                            params={"system": CPT, "code": code}, headers={"Connection": "close"})
        assert resp.status_code == 200
    for _ in range(3):
        assert requests.get(f"{server.root}/fhir/ValueSet/$expand", params={"url": VS_URL},
                            headers={"Connection": "close"}, timeout=10).status_code == 200
    assert requests.get(f"{server.root}/fhir/CodeSystem/$lookup", timeout=10,
                        params={"system": CPT, "code": "99999x"}).status_code == 404
    # each worker writes its counts every FLUSH_SECONDS (and the access lines within 0.1 s)
    time.sleep(FLUSH_SECONDS + 0.5)
    after = scrape(server.root)

    def delta(name: str, **labels: str) -> float:
        return counter(after, name, **labels) - counter(before, name, **labels)

    assert delta("tx_requests_total", operation="CodeSystem/$lookup", status="200") == 5
    assert delta("tx_requests_total", operation="CodeSystem/$lookup", status="404") == 1
    assert delta("tx_requests_total", operation="ValueSet/$expand", status="200") == 3
    assert delta("tx_request_duration_seconds_count", operation="ValueSet/$expand") == 3
    assert delta("tx_response_cache_total", result="hit") + delta(
        "tx_response_cache_total", result="miss") == 9  # every operation GET looked up
    assert delta("tx_expansion_size_count") >= 1  # misses ran $expand (hits replay it)
    assert counter(after, "tx_worker_starts_total") >= 2
    assert counter(after, "tx_content_loads_total", result="ok") >= 1
    # Which worker answered /metrics did not matter: the access lines show both served.
    pids = {orjson.loads(line)["pid"] for line in server.log_lines()
            if '"terminology.access"' in line and "$lookup" in line}
    assert len(pids) == 2


def test_admin_reload_is_refused_without_the_token(server: Server) -> None:
    resp = requests.post(f"{server.root}/admin/reload", timeout=10,
                         headers={"Authorization": "Bearer wrong"})
    assert resp.status_code == 401
    assert resp.json()["issue"][0]["code"] == "login"
    assert ADMIN_TOKEN not in server.log.read_text()


def test_sighup_reload_swaps_content_under_load_without_a_failed_request(server: Server) -> None:
    failures: list[str] = []
    answered = [0]
    stop = threading.Event()

    def load() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                try:
                    resp = session.get(f"{server.root}/fhir/ValueSet/$expand",
                                       params={"url": VS_URL}, timeout=20)
                    if resp.status_code != 200:
                        failures.append(f"{resp.status_code} {resp.text[:200]}")
                    answered[0] += 1
                except requests.RequestException as e:
                    failures.append(repr(e))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        replaced = replaced_workers(server)
        (server.content / "vs.json").write_bytes(value_set("2"))
        run = subprocess.run([sys.executable, "-m", "terminology.cli", "reload",
                              "--pid-file", str(server.pid_file)],
                             capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, run.stderr
        wait_for_version(server, "2", replaced)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    print(f"reload under load: {answered[0]} requests from 4 keep-alive clients, "
          f"{len(failures)} failed")  # pytest -s
    assert failures == []
    assert answered[0] > 20
    # The cache was dropped: the expansion now names version 2 of the value set.
    resp = requests.get(f"{server.root}/fhir/ValueSet/$expand", params={"url": VS_URL}, timeout=10)
    assert resp.json()["version"] == "2"


def test_broken_reload_keeps_the_old_content_and_logs_why(server: Server) -> None:
    current = server.served_version()
    replaced = replaced_workers(server)
    (server.content / "broken.json").write_text('{"resourceType": "ValueSet", "status": "bogus"}')
    try:
        before = counter(scrape(server.root), "tx_content_loads_total", result="failed")
        os.kill(int(server.pid_file.read_text()), signal.SIGHUP)
        deadline = time.monotonic() + 30
        while "reload failed" not in server.log.read_text():
            assert time.monotonic() < deadline, "no reload failure logged"
            time.sleep(0.1)
        wait_for_version(server, current, replaced)  # replaced one by one, on the old content
        failed = counter(scrape(server.root), "tx_content_loads_total", result="failed")
        assert failed == before + 1
        logged = [orjson.loads(line) for line in server.log_lines() if "reload failed" in line]
        assert logged[-1]["level"] == "error"
        assert "broken.json" in logged[-1]["message"] and "bogus" in logged[-1]["message"]
    finally:
        (server.content / "broken.json").unlink()


def test_admin_endpoint_reloads_with_the_token(server: Server) -> None:
    replaced = replaced_workers(server)
    (server.content / "vs.json").write_bytes(value_set("3"))
    resp = requests.post(f"{server.root}/admin/reload", timeout=30,
                         headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert resp.status_code == 202
    wait_for_version(server, "3", replaced)


def test_every_line_the_server_wrote_is_json(server: Server) -> None:
    requests.get(f"{server.root}/fhir/ValueSet/$expand", params={"url": "%FF"}, timeout=10)
    requests.get(f"{server.root}/nowhere", headers={"X-Request-Id": "trace-me-1"}, timeout=10)
    time.sleep(0.3)
    lines = server.log_lines()
    assert len(lines) > 20
    records = [orjson.loads(line) for line in lines]  # raises on the first non-JSON line
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    loggers = {r["logger"] for r in records}
    assert {"_granian", "terminology.access", "terminology.reload"} <= loggers
    traced = [r for r in records if r.get("request_id") == "trace-me-1"]
    assert traced and traced[0]["status"] == 404


def test_a_start_on_broken_content_exits_2_with_json_lines(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"resourceType": "CodeSystem", "status": "nope"}')
    run = subprocess.run(
        [sys.executable, "-m", "terminology.cli", "serve", "--no-bundled", "--content",
         str(tmp_path), "--port", str(free_port())],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "TX_CACHE_DIR": str(tmp_path / "cache")})
    assert run.returncode == 2
    lines = [orjson.loads(line) for line in (run.stdout + run.stderr).splitlines() if line]
    assert any(r["level"] == "error" and re.search(r"bad\.json.*nope", r["message"]) for r in lines)


def test_dev_server_reloads_in_place_on_sighup_and_logs_json(tmp_path: Path) -> None:
    content = tmp_path / "content"
    content.mkdir()
    (content / "vs.json").write_bytes(value_set("1"))
    port, log = free_port(), tmp_path / "dev.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "terminology.cli", "serve", "--dev", "--host", "127.0.0.1",
             "--port", str(port), "--content", str(content)],
            stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "TX_CACHE_DIR": str(tmp_path / "cache")})
    dev = Server(f"http://127.0.0.1:{port}", proc, log, content, tmp_path / "none")
    try:
        wait_ready(f"{dev.root}/readyz", proc, log)
        assert dev.served_version() == "1"
        (content / "vs.json").write_bytes(value_set("2"))
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while dev.served_version() != "2":
            assert time.monotonic() < deadline, "the dev server never swapped its content"
            time.sleep(0.1)
        # The swap comes first; the reload logs its line once the content is frozen.
        while sum('"content loaded"' in line for line in dev.log_lines()) < 2:
            assert time.monotonic() < deadline, "the reload was never logged"
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    records = [orjson.loads(line) for line in dev.log_lines()]
    assert sum(r["message"] == "content loaded" for r in records) == 2
