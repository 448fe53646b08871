"""cache-id: tx-resource content sent once under an id stays in scope for that id only."""

from __future__ import annotations

from typing import Any

import pytest

from terminology.cache_ids import CachedResources, sqlite_database
from terminology.content import load_registry, overlay_registry
from terminology.errors import TooCostly
from terminology.http.app import create_app
from terminology.registry import Registry
from terminology.settings import BUNDLED_CONTENT, Settings
from tests.conftest import DATA, param_value

CS_URL = "http://example.test/cached-cs"
VS_URL = "http://example.test/cached-vs"


def code_system(display: str = "A") -> dict[str, Any]:
    return {"resourceType": "CodeSystem", "url": CS_URL, "status": "active", "content": "complete",
            "concept": [{"code": "a", "display": display}]}


VALUE_SET = {"resourceType": "ValueSet", "url": VS_URL, "status": "active",
             "compose": {"include": [{"system": CS_URL}]}}


def validate(client: Any, cache_id: str | None, *resources: dict[str, Any]) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": "url", "valueUri": VS_URL}, {"name": "system", "valueUri": CS_URL},
        {"name": "code", "valueCode": "a"}]
    if cache_id is not None:
        params.append({"name": "cache-id", "valueString": cache_id})
    params += [{"name": "tx-resource", "resource": r} for r in resources]
    resp = client.post("/fhir/ValueSet/$validate-code",
                       json={"resourceType": "Parameters", "parameter": params})
    body: dict[str, Any] = resp.get_json()
    body["status"] = resp.status_code
    return body


@pytest.fixture()
def fresh_client() -> Any:
    settings = Settings(content_dirs=[BUNDLED_CONTENT, DATA], workers=1)
    return create_app(settings, load_registry([BUNDLED_CONTENT, DATA])).test_client()


def test_resources_sent_with_a_cache_id_serve_later_requests_naming_it(fresh_client: Any) -> None:
    assert param_value(validate(fresh_client, "one", code_system(), VALUE_SET), "result") is True
    again = validate(fresh_client, "one")
    assert param_value(again, "result") is True and param_value(again, "display") == "A"
    by_get = fresh_client.get(f"/fhir/ValueSet/$validate-code?cache-id=one&url={VS_URL}"
                              f"&system={CS_URL}&code=a").get_json()
    assert param_value(by_get, "result") is True


def test_a_cache_id_never_sees_another_ids_resources(fresh_client: Any) -> None:
    validate(fresh_client, "one", code_system(), VALUE_SET)
    other = validate(fresh_client, "two")
    assert other["status"] == 404 and other["resourceType"] == "OperationOutcome"
    assert validate(fresh_client, None)["status"] == 404  # nor a request without one


def test_a_resource_sent_again_under_the_id_replaces_the_old_one(fresh_client: Any) -> None:
    validate(fresh_client, "one", code_system("A"), VALUE_SET)
    validate(fresh_client, "one", code_system("Changed"))
    assert param_value(validate(fresh_client, "one"), "display") == "Changed"


def test_terminology_capabilities_advertise_cache_id_in_the_default_configuration(client: Any) -> None:
    caps = client.get("/fhir/metadata?mode=terminology").get_json()
    assert "cache-id" in [p["name"] for p in caps["expansion"]["parameter"]]  # two workers share it


def test_what_one_worker_was_sent_under_an_id_another_worker_finds(tmp_path: Any) -> None:
    file = str(tmp_path / "ids.sqlite3")
    worker_1 = CachedResources(10, 1_000_000, 600, db=sqlite_database(file, shared=True))
    worker_2 = CachedResources(10, 1_000_000, 600, db=sqlite_database(file, shared=True))
    base = Registry()
    worker_1.scoped("one", [code_system("A")], base, overlay_registry)
    found = worker_2.scoped("one", [], base, overlay_registry).code_system(CS_URL)
    assert found is not None and found.locate("a").display == "A"  # type: ignore[union-attr]
    worker_1.scoped("one", [code_system("Changed")], base, overlay_registry)
    again = worker_2.scoped("one", [], base, overlay_registry).code_system(CS_URL)
    assert again is not None and again.locate("a").display == "Changed"  # type: ignore[union-attr]
    assert worker_2.scoped("two", [], base, overlay_registry).code_system(CS_URL) is None


def test_a_database_that_fails_serves_the_request_with_what_it_carries(tmp_path: Any) -> None:
    broken = sqlite_database(str(tmp_path / "missing-dir" / "ids.sqlite3"), shared=True)
    store = CachedResources(10, 1_000_000, 600, db=broken)
    scoped = store.scoped("one", [code_system()], Registry(), overlay_registry)
    assert scoped.code_system(CS_URL) is not None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_cache_id_expires_when_idle() -> None:
    base = Registry()
    clock = Clock()
    store = CachedResources(max_ids=10, max_bytes=1_000_000, ttl=60, clock=clock)
    store.scoped("one", [code_system()], base, overlay_registry)
    clock.now = 59
    assert store.scoped("one", [], base, overlay_registry).code_system(CS_URL) is not None
    clock.now = 59 + 61
    assert store.scoped("one", [], base, overlay_registry).code_system(CS_URL) is None


def test_the_store_keeps_at_most_max_ids_least_recently_used_first() -> None:
    base = Registry()
    store = CachedResources(max_ids=2, max_bytes=1_000_000, ttl=600)
    store.scoped("a", [code_system()], base, overlay_registry)
    store.scoped("b", [code_system()], base, overlay_registry)
    store.scoped("a", [], base, overlay_registry)  # a is now the most recently used
    store.scoped("c", [code_system()], base, overlay_registry)
    assert len(store) == 2
    assert store.scoped("a", [], base, overlay_registry).code_system(CS_URL) is not None
    assert store.scoped("b", [], base, overlay_registry).code_system(CS_URL) is None


def test_content_over_the_byte_budget_is_too_costly_and_not_remembered() -> None:
    store = CachedResources(max_ids=2, max_bytes=100, ttl=600)
    with pytest.raises(TooCostly):
        store.scoped("a", [code_system()], Registry(), overlay_registry)
    assert len(store) == 0 and store.size == 0


def test_invalid_content_under_a_cache_id_is_a_400_and_not_remembered(fresh_client: Any) -> None:
    bad = {"resourceType": "CodeSystem", "url": CS_URL, "status": "nonsense", "content": "complete"}
    assert validate(fresh_client, "one", bad)["status"] == 400
    assert param_value(validate(fresh_client, "one", code_system(), VALUE_SET), "result") is True


def test_gets_naming_a_cache_id_are_never_answered_from_the_response_cache(fresh_client: Any) -> None:
    url = f"/fhir/ValueSet/$validate-code?cache-id=late&url={VS_URL}&system={CS_URL}&code=a"
    assert fresh_client.get(url).status_code == 404  # nothing sent under 'late' yet
    validate(fresh_client, "late", code_system(), VALUE_SET)
    again = fresh_client.get(url)
    assert again.status_code == 200 and param_value(again.get_json(), "result") is True
