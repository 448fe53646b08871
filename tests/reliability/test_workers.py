"""A worker killed under load (SIGKILL, as the OOM killer or a native crash would) is replaced:
the server answers again at once and only the requests in flight on that worker fail."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from ..conftest import running_server
from .conftest import DISPLAY_72126, LOOKUP_72126

CLIENTS = 8
RECOVERY_SECONDS = 2.0


def worker_pids(server_pid: int) -> set[int]:
    """The server's worker processes (its children, from /proc)."""
    found: set[int] = set()
    for task in Path(f"/proc/{server_pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.update(int(p) for p in text)
    return found


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A server of its own (two workers), since this test kills its workers."""
    with running_server(tmp_path, env={"TX_RESPONSE_CACHE_BYTES": "0"}, args=("--workers", "2")) as running:
        yield running


def wait_dead(pid: int) -> float:
    """The moment process `pid` is wholly dead: reaped, or a zombie with no thread left (its
    main thread turns zombie before the others have exited and closed its sockets)."""
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            threads = len(list(Path(f"/proc/{pid}/task").iterdir()))
        except OSError:
            return time.monotonic()
        if state in ("Z", "X") and threads <= 1:
            return time.monotonic()
        time.sleep(0.001)


def wait_workers(server_pid: int, count: int, other_than: set[int], timeout: float) -> set[int]:
    """The worker pids once `count` workers run and none is in `other_than`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = worker_pids(server_pid)
        if len(pids) == count and not pids & other_than:
            return pids
        time.sleep(0.05)
    raise AssertionError(f"workers {worker_pids(server_pid)} after {timeout} s")


class Load:
    """CLIENTS threads sending $lookup, one request in flight each; failures with start times."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.stop = threading.Event()
        self.failures: list[tuple[float, str]] = []
        self.answered_after: list[float] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.client) for _ in range(CLIENTS)]

    def client(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:  # a new connection each time: a request is bound to the worker accepting it
                resp = requests.get(self.base + LOOKUP_72126, timeout=10,
                                    headers={"Connection": "close"})
                ok = resp.status_code == 200 and DISPLAY_72126 in resp.text
                problem = "" if ok else f"{resp.status_code} {resp.text[:200]}"
            except requests.RequestException as e:
                problem = repr(e)
            with self.lock:
                if problem:
                    self.failures.append((started, problem))
                else:
                    self.answered_after.append(started)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=15)


def test_sigkilled_worker_is_replaced_and_only_its_in_flight_requests_fail(server: tuple[str, subprocess.Popen[bytes]]) -> None:
    base, proc = server
    server_pid = proc.pid
    first = wait_workers(server_pid, 2, set(), timeout=10)
    with Load(base) as load:
        time.sleep(1.0)  # under load
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        dead_at = wait_dead(victim)
        replaced = wait_workers(server_pid, 2, {victim}, timeout=RECOVERY_SECONDS)
        time.sleep(RECOVERY_SECONDS + 1.0)  # the load goes on, past the recovery window
    assert replaced - first, "no new worker"
    assert proc.poll() is None, "the main process exited"
    # every request begun once the worker was dead was answered: the failures are the ones it
    # had accepted (SIGKILL takes a moment to land on a busy machine)
    assert not [f for f in load.failures if f[0] > dead_at], (dead_at, load.failures)
    assert len(load.failures) <= 2 * CLIENTS, load.failures
    assert sum(1 for t in load.answered_after if t > dead_at + RECOVERY_SECONDS) > 20
    resp = requests.get(base + LOOKUP_72126, timeout=5)
    assert resp.status_code == 200 and DISPLAY_72126 in resp.text


def test_worker_that_keeps_dying_is_respawned_and_the_server_stays_up(server: tuple[str, subprocess.Popen[bytes]]) -> None:
    # granian alone stops the whole server when a worker dies twice within 5.5 s
    base, proc = server
    server_pid = proc.pid
    pids = wait_workers(server_pid, 2, set(), timeout=10)
    for _ in range(3):
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        pids = wait_workers(server_pid, 2, {victim}, timeout=RECOVERY_SECONDS + 1.5)
    assert proc.poll() is None, "the main process exited"
    resp = requests.get(base + LOOKUP_72126, timeout=5)
    assert resp.status_code == 200 and DISPLAY_72126 in resp.text
