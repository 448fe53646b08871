"""The response cache (terminology/http/fhir/response_cache.py): what is reused, what never is."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from terminology import operations
from terminology.http.app import create_app
from terminology.http.fhir.response_cache import ResponseCache, cache_key
from terminology.registry import Registry
from terminology.settings import BUNDLED_CONTENT, Settings

from ..conftest import CPT_URL, DATA, assert_outcome, param_value

LOOKUP = f"/fhir/CodeSystem/$lookup?system={CPT_URL}&code=72126"


@pytest.fixture()
def cached_app(registry: Registry) -> Any:
    """A fresh app (so a fresh cache) over the test registry, with the cache on."""
    return create_app(Settings(content_dirs=[BUNDLED_CONTENT, DATA]), registry)


@pytest.fixture()
def lookup_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Counts the $lookup handler's runs (each element: one call's Accept-Language)."""
    calls: list[Any] = []
    real: Callable[[Any], dict[str, Any]] = operations.HANDLERS[("CodeSystem", "lookup")]

    def counting(ctx: Any) -> dict[str, Any]:
        calls.append(ctx.accept_language)
        return real(ctx)

    monkeypatch.setitem(operations.HANDLERS, ("CodeSystem", "lookup"), counting)
    return calls


def test_identical_get_is_answered_from_cache_with_the_same_body_and_headers(cached_app: Any, lookup_calls: list[Any]) -> None:
    client = cached_app.test_client()
    first, second = client.get(LOOKUP), client.get(LOOKUP)
    assert first.status_code == second.status_code == 200
    assert second.get_data() == first.get_data()
    assert param_value(second.get_json(), "code") == "72126"
    assert len(lookup_calls) == 1
    without_id = [(k, v) for k, v in first.headers.items() if k != "X-Request-Id"]
    assert [(k, v) for k, v in second.headers.items() if k != "X-Request-Id"] == without_id
    assert second.headers["Content-Type"] == "application/fhir+json; charset=utf-8"


def test_cached_answers_get_their_own_request_id(cached_app: Any, lookup_calls: list[Any]) -> None:
    client = cached_app.test_client()
    ids = [client.get(LOOKUP).headers["X-Request-Id"] for _ in range(3)]
    assert len(set(ids)) == 3 and all(len(i) == 32 for i in ids)
    assert client.get(LOOKUP, headers={"X-Request-Id": "req-7"}).headers["X-Request-Id"] == "req-7"
    assert len(lookup_calls) == 1


def test_a_different_accept_language_is_a_different_entry(cached_app: Any, lookup_calls: list[Any]) -> None:
    client = cached_app.test_client()
    for lang in ("en", "fr", "en", "fr"):
        assert client.get(LOOKUP, headers={"Accept-Language": lang}).status_code == 200
    assert lookup_calls == ["en", "fr"]


def test_a_different_query_string_is_a_different_entry(cached_app: Any, lookup_calls: list[Any]) -> None:
    client = cached_app.test_client()
    a = client.get(LOOKUP).get_json()
    b = client.get(f"/fhir/CodeSystem/$lookup?system={CPT_URL}&code=72127").get_json()
    assert param_value(a, "code") == "72126" and param_value(b, "code") == "72127"
    assert len(lookup_calls) == 2


def test_post_bypasses_the_cache(cached_app: Any, lookup_calls: list[Any]) -> None:
    client = cached_app.test_client()
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "system", "valueUri": CPT_URL}, {"name": "code", "valueCode": "72126"}]}
    answers = [client.post("/fhir/CodeSystem/$lookup", json=body) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200]
    assert len(lookup_calls) == 2


def test_tx_resource_in_the_query_bypasses_the_cache() -> None:
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/fhir/CodeSystem/$lookup"}
    assert cache_key({**env, "QUERY_STRING": "code=a"}) is not None
    assert cache_key({**env, "QUERY_STRING": "code=a&tx-resource=%7B%7D"}) is None
    assert cache_key({**env, "QUERY_STRING": "code=a&tx%2Dresource=%7B%7D"}) is None
    assert cache_key({**env, "QUERY_STRING": "code=a", "REQUEST_METHOD": "POST"}) is None
    assert cache_key({**env, "PATH_INFO": "/fhir/CodeSystem/cpt"}) is None  # reads embed the base url


def test_error_answers_are_never_cached_and_keep_their_request_id(cached_app: Any, lookup_calls: list[Any]) -> None:
    client = cached_app.test_client()
    unknown = f"/fhir/CodeSystem/$lookup?system={CPT_URL}&code=99999"
    first = assert_outcome(client.get(unknown, headers={"X-Request-Id": "a-1"}), 404)
    resp = client.get(unknown, headers={"X-Request-Id": "a-2"})
    assert_outcome(resp, 404)
    assert resp.headers["X-Request-Id"] == "a-2" and resp.get_json() == first
    assert len(lookup_calls) == 2


def test_a_cached_json_answer_is_not_served_to_a_client_that_asks_for_xml(cached_app: Any) -> None:
    client = cached_app.test_client()
    assert client.get(LOOKUP).status_code == 200
    assert client.get(LOOKUP).status_code == 200
    xml = client.get(LOOKUP, headers={"Accept": "application/fhir+xml"})
    assert xml.status_code == 200 and xml.mimetype == "application/fhir+xml"
    assert xml.data.startswith(b"<?xml")
    again = client.get(LOOKUP, headers={"Accept": "application/fhir+xml"})
    assert again.data == xml.data and again.mimetype == "application/fhir+xml"
    assert client.get(LOOKUP).mimetype == "application/fhir+json"
    assert client.get(LOOKUP + "&_format=xml").mimetype == "application/fhir+xml"
    assert_outcome(client.get(LOOKUP, headers={"Accept": "text/html"}), 406)


def test_cache_size_zero_turns_the_cache_off(registry: Registry, lookup_calls: list[Any]) -> None:
    app = create_app(Settings(content_dirs=[BUNDLED_CONTENT, DATA], response_cache_bytes=0), registry)
    client = app.test_client()
    assert client.get(LOOKUP).get_data() == client.get(LOOKUP).get_data()
    assert len(lookup_calls) == 2


def test_lru_keeps_total_bytes_under_the_budget_and_evicts_the_least_recently_used() -> None:
    cache = ResponseCache(max_bytes=100, max_entry_bytes=40)
    for name in ("a", "b", "c"):
        cache.put((name,), [], b"x" * 30)
    assert cache.get(("a",)) is not None  # a is now the most recently used
    cache.put(("d",), [], b"x" * 30)
    assert cache.get(("b",)) is None and cache.get(("a",)) is not None
    assert cache.size <= 100 and len(cache) == 3
    cache.put(("huge",), [], b"x" * 41)  # larger than one entry may be: not kept
    assert cache.get(("huge",)) is None
