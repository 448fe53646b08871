"""A history test: writers and readers against the real server, checked for read-your-writes.

For HISTORY_SECONDS (15 s per store by default; the environment variable of that name
changes it) WRITERS writers update RESOURCES value sets with If-Match, one of them deletes a
value set part way, and READERS readers read them through every read path of
history_support.READ_PATHS (read, read with a token, XML, 304 revalidation, search, $expand
by the thin dispatch, by Flask and in XML, $validate-code, batch entries), each on a new
connection. Every operation's start, end and the version it saw is recorded, and
history_support.check asserts per resource: no read that starts after a write's
acknowledgement answers an older version (on another replica: one second later); a reader
never sees versions go backwards; a deleted resource never reappears. A failure prints the
shortest history that shows it.

Runs on SQLite (one instance with two workers, a second instance on the same host and the
same default data directory writing to its own store) and on PostgreSQL (two replicas of
one store, two workers each, plus the same second instance with its own SQLite store).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import orjson
import pytest
import requests

from .authoring_support import (
    TOKEN,
    Server,
    bearer,
    postgres_missing,
    postgres_server,
    running_server,
)
from .history_support import (
    GONE,
    READ_PATHS,
    History,
    Noise,
    Op,
    UnexpectedAnswer,
    check,
    revision,
)

HISTORY_SECONDS = float(os.environ.get("HISTORY_SECONDS", "15"))
WRITERS, READERS, RESOURCES = 3, 6, 3
MAX_OPS_PER_CLIENT = 5000  # a bound besides the clock
WRITE = {**bearer(TOKEN), "Connection": "close"}


class Run:
    """One history run: the servers written to and read from, and what happened."""

    def __init__(self, servers: list[Server]) -> None:
        self.servers = servers
        self.history = History()
        self.errors: list[str] = []
        self.deadline = time.monotonic() + HISTORY_SECONDS
        self.resources: list[dict[str, str]] = []
        self.deleted = threading.Event()

    def name(self, server: Server) -> str:
        return f"server-{self.servers.index(server) + 1}"

    def create(self) -> None:
        for _ in range(RESOURCES):
            url = f"http://example.test/fhir/ValueSet/history-{uuid.uuid4().hex[:8]}"
            start = self.history.now()
            resp = requests.post(f"{self.servers[0].base}/ValueSet", data=orjson.dumps(revision(url, 1)),
                                 headers=WRITE, timeout=30)
            assert resp.status_code == 201, resp.text
            rid = resp.json()["id"]
            self.history.add(Op("write", "setup", self.name(self.servers[0]), rid, start, self.history.now(), 1))
            self.resources.append({"id": rid, "url": url})

    def writer(self, n: int) -> None:
        known = {r["id"]: 1 for r in self.resources}
        for i in range(MAX_OPS_PER_CLIENT):
            if time.monotonic() > self.deadline:
                return
            live = [r for r in self.resources if known.get(r["id"])]
            if not live:
                return
            vs = live[(n + i) % len(live)]
            server = self.servers[(n + i) % len(self.servers)]
            # writer 0 deletes the first value set in the last 40 % (until it succeeds)
            delete = n == 0 and known.get(self.resources[0]["id"], 0) > 0 and (
                time.monotonic() > self.deadline - HISTORY_SECONDS * 0.4)
            if delete:
                vs = self.resources[0]
            try:
                self.write(server, vs, known, delete, f"writer-{n}")
            except (requests.RequestException, AssertionError) as e:
                self.errors.append(f"writer-{n}: {type(e).__name__}: {e}")
                return

    def write(self, server: Server, vs: dict[str, str], known: dict[str, int], delete: bool, who: str) -> None:
        version = known[vs["id"]]
        start = self.history.now()
        headers = {**WRITE, "If-Match": f'W/"{version}"'}
        if delete:
            resp = requests.delete(f"{server.base}/ValueSet/{vs['id']}", headers=headers, timeout=30)
        else:
            resp = requests.put(f"{server.base}/ValueSet/{vs['id']}", headers=headers, timeout=30,
                                data=orjson.dumps(revision(vs["url"], version + 1, vs["id"])))
        end = self.history.now()
        if resp.status_code == 412:  # another writer got there first: read the version again
            got = requests.get(f"{server.base}/ValueSet/{vs['id']}", headers={"Connection": "close"}, timeout=30)
            known[vs["id"]] = int(got.json()["meta"]["versionId"]) if got.status_code == 200 else 0
            return
        assert resp.status_code in (200, 204), f"{resp.status_code} {resp.text[:300]}"
        if delete:
            self.history.add(Op("delete", who, self.name(server), vs["id"], start, end, GONE))
            known[vs["id"]] = 0
            self.deleted.set()
            return
        assert resp.headers["ETag"] == f'W/"{version + 1}"', resp.headers["ETag"]
        self.history.add(Op("write", who, self.name(server), vs["id"], start, end, version + 1))
        known[vs["id"]] = version + 1

    def reader(self, n: int) -> None:
        server = self.servers[n % len(self.servers)]  # a reader stays with one replica
        paths = itertools.cycle(sorted(READ_PATHS))
        for i in range(MAX_OPS_PER_CLIENT):
            if time.monotonic() > self.deadline:
                return
            vs = self.resources[(n + i) % len(self.resources)]
            path = next(paths)
            start = self.history.now()
            try:
                seen = READ_PATHS[path](server.base, vs["id"], vs["url"], TOKEN)
            except (requests.RequestException, UnexpectedAnswer, KeyError, ValueError) as e:
                self.errors.append(f"reader-{n} {path}: {type(e).__name__}: {e}")
                return
            self.history.add(Op(f"read:{path}", f"reader-{n}", self.name(server), vs["id"],
                                start, self.history.now(), seen.version, seen))

    def run(self) -> None:
        self.create()
        threads = [threading.Thread(target=self.writer, args=(n,)) for n in range(WRITERS)]
        threads += [threading.Thread(target=self.reader, args=(n,)) for n in range(READERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=HISTORY_SECONDS + 120)


def assert_consistent(run: Run, lag: float) -> None:
    reads = [op for op in run.history.ops if op.seen is not None]
    writes = [op for op in run.history.ops if op.seen is None]
    paths = {op.kind for op in reads}
    print(f"\nhistory: {len(writes)} writes, {len(reads)} reads over {HISTORY_SECONDS:g} s "
          f"through {len(paths)} read paths")
    assert run.errors == []
    problems = check(run.history, lag)
    assert problems == [], f"{len(problems)} violations; the first:\n" + "\n".join(problems[:3])
    assert run.deleted.is_set(), "the run never deleted a resource"
    assert len(paths) == len(READ_PATHS) and len(writes) > RESOURCES * 3


def instance_env(home: Path, store: str) -> dict[str, str]:
    return {"XDG_DATA_HOME": str(home), "TX_STORE": store, "TX_WRITE_TOKENS": TOKEN,
            "TX_LOG_LEVEL": "warning"}


@pytest.fixture()
def second_instance(tmp_path: Path) -> Iterator[Path]:
    """Another instance on this host, in the same default data directory, writing to its own
    SQLite store throughout; yields that data directory's XDG_DATA_HOME."""
    home = tmp_path / "xdg-data"
    with running_server(tmp_path / "other", instance_env(home, f"sqlite:///{tmp_path / 'other.db'}")) as other:
        noise = Noise(other.base, TOKEN)
        try:
            yield home
        finally:
            noise.close()


def test_history_on_sqlite_with_two_workers_and_a_second_instance(tmp_path: Path, second_instance: Path) -> None:
    env = instance_env(second_instance, f"sqlite:///{tmp_path / 'main.db'}")
    with running_server(tmp_path / "main", env) as server:
        run = Run([server])
        run.run()
    assert_consistent(run, lag=0.0)


@pytest.mark.skipif(postgres_missing() is not None, reason=str(postgres_missing()))
def test_history_on_postgresql_with_two_replicas_and_a_second_instance(
        tmp_path: Path, second_instance: Path) -> None:
    with postgres_server() as url, ExitStack() as stack:
        replicas = [stack.enter_context(running_server(tmp_path / f"replica-{n}", {
            **instance_env(second_instance, url), "TX_DATA_DIR": str(tmp_path / f"data-{n}")}))
            for n in (1, 2)]
        run = Run(replicas)
        run.run()
    assert_consistent(run, lag=1.0)
