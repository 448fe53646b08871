"""A write is seen by every read at once: the operator's scenario of issue 25.

Two instances on one host, each with its own SQLite store (TX_STORE=sqlite:///.../a.db and
b.db), no TX_DATA_DIR (both use the default data directory, here one XDG_DATA_HOME), the
default two workers. Instance B keeps writing to its own store meanwhile, so its change
numbers run ahead of A's. Every read goes out on a new connection, anonymously, straight
after the write's 2xx, through every read path of history_support.READ_PATHS.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from .authoring_support import TOKEN, Server, bearer, json_of, running_server
from .history_support import GONE, READ_PATHS, Noise, Seen, revision

WRITE = bearer(TOKEN)


def instance_env(home: Path, db: Path) -> dict[str, str]:
    """An instance with its own SQLite store and the default data directory (under `home`)."""
    return {"XDG_DATA_HOME": str(home), "TX_STORE": f"sqlite:///{db}", "TX_WRITE_TOKENS": TOKEN,
            "TX_LOG_LEVEL": "warning"}


@pytest.fixture(scope="module")
def instances(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    root = tmp_path_factory.mktemp("two-instances")
    home = root / "xdg-data"  # the default data directory both instances share
    with running_server(root / "a", instance_env(home, root / "a.db")) as a, \
            running_server(root / "b", instance_env(home, root / "b.db")) as b:
        noise = Noise(b.base, TOKEN)
        try:
            yield a, b
        finally:
            noise.close()


def create(server: Server, url: str) -> dict[str, Any]:
    resp = requests.post(f"{server.base}/ValueSet", data=orjson.dumps(revision(url, 1)),
                         headers={**WRITE, "Connection": "close"}, timeout=30)
    assert resp.status_code == 201, resp.text
    return json_of(resp)


def update(server: Server, vs: dict[str, Any], n: int) -> None:
    resp = requests.put(f"{server.base}/ValueSet/{vs['id']}", timeout=30,
                        data=orjson.dumps(revision(vs["url"], n, vs["id"])),
                        headers={**WRITE, "If-Match": f'W/"{n - 1}"', "Connection": "close"})
    assert resp.status_code == 200, resp.text


def reads_after(server: Server, vs: dict[str, Any], want: int, rounds: int) -> list[str]:
    """Every read path `rounds` times right away; the stale answers, each named."""
    stale = []
    for _ in range(rounds):
        for name, path in READ_PATHS.items():
            seen = path(server.base, vs["id"], vs["url"], TOKEN)
            if not seen.could_be(want):
                stale.append(f"{name}: {seen} after version {want} was acknowledged")
    return stale


def test_twelve_updates_then_every_read_on_every_path_answers_the_new_version(
        instances: tuple[Server, Server]) -> None:
    a, _ = instances
    vs = create(a, f"http://example.test/fhir/ValueSet/ryw-{uuid.uuid4().hex[:8]}")
    stale: list[str] = []
    reads = 0
    for n in range(2, 14):  # 12 successive updates
        update(a, vs, n)
        stale += reads_after(a, vs, n, rounds=2)
        reads += 2 * len(READ_PATHS)
    assert reads >= 200
    assert stale == [], f"{len(stale)} stale reads of {reads}:\n" + "\n".join(stale[:20])


def test_fifteen_creates_are_read_back_at_once(instances: tuple[Server, Server]) -> None:
    a, _ = instances
    missing = []
    for _ in range(15):
        vs = create(a, f"http://example.test/fhir/ValueSet/new-{uuid.uuid4().hex[:8]}")
        for name, path in READ_PATHS.items():
            seen = path(a.base, vs["id"], vs["url"], TOKEN)
            if not seen.could_be(1):
                missing.append(f"{vs['id']} {name}: {seen}")
    assert missing == []


def test_after_delete_every_request_is_410(instances: tuple[Server, Server]) -> None:
    a, _ = instances
    vs = create(a, f"http://example.test/fhir/ValueSet/del-{uuid.uuid4().hex[:8]}")
    update(a, vs, 2)
    resp = requests.delete(f"{a.base}/ValueSet/{vs['id']}", headers={**WRITE, "Connection": "close"},
                           timeout=30)
    assert resp.status_code == 204
    gone_paths = ("read", "read-with-token", "read-xml", "revalidate-304", "batch-entry", "expand-flask")
    answers = [(name, READ_PATHS[name](a.base, vs["id"], vs["url"], TOKEN))
               for _ in range(4) for name in gone_paths]
    assert all(seen == Seen(GONE) for _, seen in answers), answers
    # by url the value set is simply no longer there
    for name in ("search", "expand-dispatch", "validate-code"):
        seen = READ_PATHS[name](a.base, vs["id"], vs["url"], TOKEN)
        assert seen.version < 0, (name, seen)


def test_twenty_authors_racing_with_if_match_one_winner_nineteen_412(
        instances: tuple[Server, Server]) -> None:
    a, _ = instances
    vs = create(a, f"http://example.test/fhir/ValueSet/race-{uuid.uuid4().hex[:8]}")
    barrier = threading.Barrier(20)

    def author(n: int) -> int:
        # each author reads (new connection, straight after the create), then writes over it
        got = requests.get(f"{a.base}/ValueSet/{vs['id']}", headers={"Connection": "close"}, timeout=30)
        etag = got.headers.get("ETag", "") if got.status_code == 200 else f"missing {got.status_code}"
        barrier.wait(timeout=60)
        body = {**json_of(got), "title": f"author {n}"} if got.status_code == 200 else revision(vs["url"], 2, vs["id"])
        resp = requests.put(f"{a.base}/ValueSet/{vs['id']}", data=orjson.dumps(body), timeout=60,
                            headers={**WRITE, "If-Match": etag, "Connection": "close"})
        return resp.status_code

    with ThreadPoolExecutor(20) as pool:
        statuses = sorted(pool.map(author, range(20)))
    assert statuses == [200] + [412] * 19, statuses
