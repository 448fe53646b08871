"""Two replicas sharing one real PostgreSQL: a write on one is served by the other within 1 s.

The fixture starts a fresh PostgreSQL 15 cluster (Debian's binaries) in a temp directory on a
free port of 127.0.0.1; each replica has its own data directory (nothing shared but the
database), as the two replicas of docker-compose.yml do.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from .authoring_support import (
    TOKEN,
    Server,
    bearer,
    body_site_value_set,
    json_of,
    postgres_missing,
    postgres_server,
    rsa_key,
    running_server,
    writes_env,
)

pytestmark = pytest.mark.skipif(postgres_missing() is not None, reason=str(postgres_missing()))
KEY = rsa_key()
WRITE = bearer(TOKEN)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    with postgres_server() as url:
        root = tmp_path_factory.mktemp("pg-replicas")
        env_a = writes_env(root / "data-a", KEY, TX_STORE=url)
        env_b = writes_env(root / "data-b", KEY, TX_STORE=url)
        with running_server(root / "a", env_a) as a, running_server(root / "b", env_b) as b:
            yield a, b


def codes(server: Server, url: str) -> list[str] | None:
    resp = requests.get(f"{server.base}/ValueSet/$expand", params={"url": url}, timeout=10)
    if resp.status_code != 200:
        return None
    return sorted(c["code"] for c in json_of(resp)["expansion"].get("contains", []))


def served_within(server: Server, url: str, want: list[str], seconds: float) -> float:
    """Seconds until every answer of `server` is `want` (fails past `seconds`)."""
    started = time.monotonic()
    while codes(server, url) != want:
        assert time.monotonic() - started < seconds, f"{server.base} still answers the old version"
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_write_on_one_replica_is_served_by_the_other_within_a_second(replicas: tuple[Server, Server]) -> None:
    a, b = replicas
    url = f"http://example.test/fhir/ValueSet/pg-{uuid.uuid4().hex[:8]}"
    created = requests.post(f"{a.base}/ValueSet", data=orjson.dumps(body_site_value_set(url, ["knee"])),
                            headers=WRITE, timeout=10)
    assert created.status_code == 201, created.text
    served_within(b, url, ["knee"], 1.0)
    for _ in range(6):  # b's workers cache version 1
        assert codes(b, url) == ["knee"]
    vs = json_of(created)
    vs["compose"] = body_site_value_set(url, ["knee", "l-spine"])["compose"]
    updated = requests.put(f"{a.base}/ValueSet/{vs['id']}", data=orjson.dumps(vs),
                           headers={**WRITE, "If-Match": 'W/"1"'}, timeout=10)
    assert updated.status_code == 200
    lag = served_within(b, url, ["knee", "l-spine"], 1.0)
    print(f"\nthe other replica served the update after {lag * 1000:.0f} ms")  # pytest -s
    for _ in range(6):  # and never the old answer again, on any worker
        assert codes(b, url) == ["knee", "l-spine"]
    read = requests.get(f"{b.base}/ValueSet/{vs['id']}", timeout=10)
    assert read.headers["ETag"] == 'W/"2"'
    assert requests.delete(f"{b.base}/ValueSet/{vs['id']}", headers=WRITE, timeout=10).status_code == 204
    started = time.monotonic()
    while requests.get(f"{a.base}/ValueSet/{vs['id']}", timeout=10).status_code != 410:
        assert time.monotonic() - started < 1.0
        time.sleep(0.02)


def test_authors_on_both_replicas_one_winner_per_version(replicas: tuple[Server, Server]) -> None:
    a, b = replicas
    url = f"http://example.test/fhir/ValueSet/pg-{uuid.uuid4().hex[:8]}"
    vs = json_of(requests.post(f"{a.base}/ValueSet", data=orjson.dumps(body_site_value_set(url, ["knee"])),
                               headers=WRITE, timeout=10))
    barrier = threading.Barrier(20)
    results: list[int] = []
    lock = threading.Lock()

    def author(n: int) -> None:
        server = (a, b)[n % 2]
        body: dict[str, Any] = {**vs, "title": f"author {n}"}
        barrier.wait()
        resp = requests.put(f"{server.base}/ValueSet/{vs['id']}", data=orjson.dumps(body),
                            headers={**WRITE, "If-Match": 'W/"1"'}, timeout=30)
        with lock:
            results.append(resp.status_code)

    threads = [threading.Thread(target=author, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] + [412] * 19
    history = json_of(requests.get(f"{b.base}/ValueSet/{vs['id']}/_history", timeout=10))
    assert history["total"] == 2


def test_postgres_store_keeps_data_on_its_own(replicas: tuple[Server, Server]) -> None:
    a, b = replicas
    assert "listener reconnecting" not in a.log_text() + b.log_text()
    # the replica's data directory holds only the change bell: the resources live in PostgreSQL
    data_dir = Path(a.log).parent.parent / "data-a"
    assert not (data_dir / "store.sqlite3").exists()


def test_content_sent_under_a_cache_id_to_one_replica_is_found_by_the_other(
        replicas: tuple[Server, Server]) -> None:
    a, b = replicas
    cs_url, vs_url = "http://example.test/pg-cached-cs", "http://example.test/pg-cached-vs"
    code_system = {"resourceType": "CodeSystem", "url": cs_url, "status": "active", "content": "complete",
                   "concept": [{"code": "a", "display": "Alpha"}]}
    value_set = {"resourceType": "ValueSet", "url": vs_url, "status": "active",
                 "compose": {"include": [{"system": cs_url}]}}

    def validate(server: Server, *resources: dict[str, Any]) -> requests.Response:
        params: list[dict[str, Any]] = [
            {"name": "url", "valueUri": vs_url}, {"name": "system", "valueUri": cs_url},
            {"name": "code", "valueCode": "a"}, {"name": "cache-id", "valueString": "pg-validator"}]
        params += [{"name": "tx-resource", "resource": r} for r in resources]
        return requests.post(f"{server.base}/ValueSet/$validate-code", timeout=30,
                             json={"resourceType": "Parameters", "parameter": params})

    assert validate(a, code_system, value_set).status_code == 200
    answers = [validate(server) for server in (b, a, b, b)]
    assert [r.status_code for r in answers] == [200] * 4, [r.text[:200] for r in answers]
    caps = json_of(requests.get(f"{b.base}/metadata", params={"mode": "terminology"}, timeout=10))
    assert "cache-id" in [p["name"] for p in caps["expansion"]["parameter"]]
