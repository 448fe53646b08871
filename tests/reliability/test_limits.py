"""Cost limits: catastrophic regexes, the request time limit, unpaged expansions, body size,
and tx-resource content that tries to replace the server's own code systems."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import pytest
import regex

from terminology.errors import BadRequest, TooCostly
from terminology.http.app import create_app
from terminology.providers.filters import compile_regex, regex_full_match, request_deadline
from terminology.registry import Registry
from terminology.settings import BUNDLED_CONTENT, Settings

from ..conftest import BODY_SITE, CPT_URL, DATA
from .conftest import (
    DISPLAY_72126,
    FHIR_JSON,
    TIME_LIMIT,
    check_outcome,
    lookup_72126_is_intact,
    parameters,
    send,
)

EXPAND = "/ValueSet/$expand"
JSON_HEADERS = {"Content-Type": FHIR_JSON}
CATASTROPHIC = "(a|a)+$"  # exponential backtracking even in the `regex` module
LONG_URL = "http://example.test/CodeSystem/long-codes"


def long_codes(lengths: range) -> dict[str, Any]:
    """A CodeSystem whose codes are runs of 'a' ending in '!': the worst case for CATASTROPHIC."""
    return {"resourceType": "CodeSystem", "url": LONG_URL, "status": "active", "content": "complete",
            "concept": [{"code": "a" * n + "!", "display": f"{n} a"} for n in lengths]}


def regex_value_set(pattern: str) -> dict[str, Any]:
    return {"resourceType": "ValueSet", "url": "http://example.test/ValueSet/regex", "status": "active",
            "compose": {"include": [{"system": LONG_URL, "filter": [
                {"property": "code", "op": "regex", "value": pattern}]}]}}


def tx(*resources: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": "tx-resource", "resource": r} for r in resources]


# -- regex --------------------------------------------------------------------------------------


def test_catastrophic_regex_stops_at_the_request_deadline() -> None:
    pattern = regex.compile(CATASTROPHIC)
    started = time.monotonic()
    with request_deadline(0.2), pytest.raises(TooCostly) as err:
        regex_full_match(pattern, "a" * 40 + "!")
    assert time.monotonic() - started < 2.0  # the regex module counts CPU time: slack for load
    assert err.value.status == 422 and "took too long" in err.value.text


def test_catastrophic_regex_filter_expand_is_too_costly(live_server: str) -> None:
    answer = send(live_server, "POST", EXPAND, data=parameters(
        {"name": "url", "valueUri": "http://example.test/ValueSet/regex"},
        *tx(regex_value_set(CATASTROPHIC), long_codes(range(30, 60)))), headers=JSON_HEADERS)
    check_outcome(answer, 422, "took too long", code="too-costly")


def test_catastrophic_regex_filter_validate_is_too_costly(live_server: str) -> None:
    answer = send(live_server, "POST", "/ValueSet/$validate-code", data=parameters(
        {"name": "url", "valueUri": "http://example.test/ValueSet/regex"},
        {"name": "system", "valueUri": LONG_URL}, {"name": "code", "valueCode": "a" * 40 + "!"},
        *tx(regex_value_set(CATASTROPHIC), long_codes(range(40, 41)))), headers=JSON_HEADERS)
    check_outcome(answer, 422, "took too long", code="too-costly")


def test_invalid_regex_is_a_400_naming_the_filter(live_server: str) -> None:
    answer = send(live_server, "POST", EXPAND, data=parameters(
        {"name": "url", "valueUri": "http://example.test/ValueSet/regex"},
        *tx(regex_value_set("(("), long_codes(range(1, 3)))), headers=JSON_HEADERS)
    check_outcome(answer, 400, "not valid", "ValueSet.compose.include.filter")


MAX_REGEX = Settings().max_regex_length


@pytest.mark.parametrize(("pattern", "status", "fragment"), [
    ("a?" * (MAX_REGEX // 2), 200, ""),  # exactly at the limit: evaluated
    ("a?" * (MAX_REGEX // 2) + "b", 400, f"more than the {MAX_REGEX}"),
    ("(" * 400 + "a" + ")" * 400, 400, f"more than the {MAX_REGEX}"),  # 400 nested groups
    ("a" * 800_000, 400, "setting max_regex_length"),  # once 6-11 s of compilation
], ids=["at-limit", "one-past", "400-nested-groups", "800-kB"])
def test_regex_filters_are_bounded_by_max_regex_length(live_server: str, pattern: str, status: int,
                                                         fragment: str) -> None:
    answer = send(live_server, "POST", EXPAND, data=parameters(
        {"name": "url", "valueUri": "http://example.test/ValueSet/regex"},
        *tx(regex_value_set(pattern), long_codes(range(1, 3)))), headers=JSON_HEADERS)
    if status == 200:
        assert answer.status == 200, answer.body[:300]
        assert answer.json()["expansion"]["total"] == 0
    else:
        check_outcome(answer, status, fragment, "ValueSet.compose.include.filter")
        assert answer.seconds < 2.0


def test_regex_too_deep_for_the_compiler_is_a_400_not_a_recursion_error() -> None:
    with request_deadline(10, max_regex_length=100_000), pytest.raises(BadRequest) as err:
        compile_regex("(" * 5000 + "a" + ")" * 5000)
    assert "nests too deeply" in err.value.text
    assert err.value.issues[0].expression == ["ValueSet.compose.include.filter"]


def test_regex_is_not_compiled_after_the_request_deadline() -> None:
    with request_deadline(0.0) as deadline, pytest.raises(TooCostly):
        time.sleep(0.01)
        assert deadline.remaining() == 0
        compile_regex("a+")


# -- the request time limit (in process, with a short limit) -------------------------------------


@pytest.fixture(scope="module")
def quick_client(registry: Registry) -> Any:
    """The app with a 0.5 s request time limit and a 10-member expansion limit."""
    settings = Settings(content_dirs=[BUNDLED_CONTENT, DATA], request_time_limit=0.5,
                        max_expansion_size=10)
    return create_app(settings, registry).test_client()


def test_slow_expansion_is_too_costly_at_the_time_limit_and_the_worker_is_free(quick_client: Any) -> None:
    # each code costs ~0.1-0.4 s of backtracking, under the 1 s per-match budget: only the
    # request time limit stops the expansion
    concepts = [{"code": "a" * 19 + "!" + str(i), "display": str(i)} for i in range(20)]
    slow = {**long_codes(range(0)), "concept": concepts}
    started = time.monotonic()
    resp = quick_client.post("/fhir" + EXPAND, data=parameters(
        {"name": "url", "valueUri": "http://example.test/ValueSet/regex"},
        *tx(regex_value_set(CATASTROPHIC), slow)), content_type=FHIR_JSON)
    elapsed = time.monotonic() - started
    assert resp.status_code == 422, resp.get_data(as_text=True)
    issue = resp.get_json()["issue"][0]
    assert issue["code"] == "too-costly"
    assert "time limit" in issue["details"]["text"] or "too long" in issue["details"]["text"]
    assert elapsed < 3.0  # 0.5 s of budget, plus one match's overrun on a loaded host
    again = quick_client.get(f"/fhir/CodeSystem/$lookup?system={CPT_URL}&code=72126")
    assert again.status_code == 200


def test_unpaged_expansion_past_the_size_limit_is_too_costly(quick_client: Any) -> None:
    resp = quick_client.get("/fhir/ValueSet/$expand?url=http://terminology.hl7.org/ValueSet/cpt-all")
    assert resp.status_code == 422, resp.get_data(as_text=True)[:300]
    assert resp.get_json()["issue"][0]["code"] == "too-costly"
    paged = quick_client.get("/fhir/ValueSet/$expand?url=http://terminology.hl7.org/ValueSet/cpt-all&count=5")
    assert paged.status_code == 200 and len(paged.get_json()["expansion"]["contains"]) == 5


def test_unpaged_expansion_of_the_largest_code_system_is_whole_and_in_time(live_server: str) -> None:
    answer = send(live_server, "GET", f"{EXPAND}?url=http://terminology.hl7.org/ValueSet/cpt-all")
    assert answer.status == 200 and answer.seconds < TIME_LIMIT
    expansion = answer.json()["expansion"]
    assert expansion["total"] == len(expansion["contains"]) > 40


# -- body size --------------------------------------------------------------------------------


def big_body(size: int) -> bytes:
    return b'{"resourceType": "Parameters", "parameter": [{"name": "x", "valueString": "' + \
        b"a" * size + b'"}]}'


def test_body_past_the_maximum_is_413(live_server: str) -> None:
    answer = send(live_server, "POST", "/CodeSystem/$lookup", data=big_body(Settings().max_body_bytes),
                  headers=JSON_HEADERS)
    check_outcome(answer, 413, "larger than", code="too-costly")


def test_chunked_body_past_the_maximum_is_413_not_truncated(live_server: str) -> None:
    limit = Settings().max_body_bytes

    def chunks() -> Iterator[bytes]:
        data = big_body(limit)
        for i in range(0, len(data), 1 << 20):
            yield data[i:i + (1 << 20)]

    for ctype in (FHIR_JSON, "application/x-www-form-urlencoded"):
        answer = send(live_server, "POST", "/CodeSystem/$lookup", data=chunks(),
                      headers={"Content-Type": ctype})
        check_outcome(answer, 413, "larger than", code="too-costly")


class EndlessStream(io.RawIOBase):
    """An endless request body that counts the bytes read from it."""

    def __init__(self) -> None:
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        b[:] = b"a" * len(b)
        self.read_bytes += len(b)
        return len(b)


def test_chunked_body_is_read_no_further_than_the_limit(registry: Registry) -> None:
    settings = Settings(content_dirs=[BUNDLED_CONTENT, DATA], max_body_bytes=100_000)
    client = create_app(settings, registry).test_client()
    stream = EndlessStream()
    resp = client.post("/fhir/CodeSystem/$lookup", content_type=FHIR_JSON,
                       headers={"Transfer-Encoding": "chunked"},
                       environ_overrides={"wsgi.input": stream, "wsgi.input_terminated": True})
    assert resp.status_code == 413
    assert stream.read_bytes <= 100_000 + 64 * 1024


# -- tx-resource never replaces the server's own content ---------------------------------------


def fake(url: str, version: str, concepts: list[tuple[str, str]]) -> dict[str, Any]:
    return {"resourceType": "CodeSystem", "url": url, "version": version, "status": "active",
            "content": "complete", "concept": [{"code": c, "display": d} for c, d in concepts]}


def test_tx_resource_claiming_cpt_does_not_replace_it(live_server: str) -> None:
    for version in ("2026", "9999"):
        forged = fake(CPT_URL, version, [("72126", "FORGED"), ("99999", "FORGED")])
        answer = send(live_server, "POST", "/CodeSystem/$lookup", headers=JSON_HEADERS, data=parameters(
            {"name": "system", "valueUri": CPT_URL}, {"name": "code", "valueCode": "72126"},
            *tx(forged)))
        assert answer.status == 200
        display = [p["valueString"] for p in answer.json()["parameter"] if p["name"] == "display"]
        assert display == [DISPLAY_72126]
        pinned = send(live_server, "POST", "/CodeSystem/$lookup", headers=JSON_HEADERS, data=parameters(
            {"name": "system", "valueUri": CPT_URL}, {"name": "code", "valueCode": "99999"},
            {"name": "version", "valueString": version}, *tx(forged)))
        assert pinned.status == 404
    lookup_72126_is_intact(live_server)


def all_codes(contains: list[dict[str, Any]]) -> Iterator[str]:
    for item in contains:
        yield item["code"]
        yield from all_codes(item.get("contains", []))


def test_tx_resource_claiming_a_loaded_system_changes_no_expansion(live_server: str) -> None:
    forged = fake(BODY_SITE, "1.0.0", [("evil", "Forged concept")])
    vs = {"resourceType": "ValueSet", "url": "http://example.test/ValueSet/bs", "status": "active",
          "compose": {"include": [{"system": BODY_SITE}]}}
    answer = send(live_server, "POST", EXPAND, headers=JSON_HEADERS, data=parameters(
        {"name": "url", "valueUri": "http://example.test/ValueSet/bs"}, *tx(vs, forged)))
    assert answer.status == 200
    codes = set(all_codes(answer.json()["expansion"]["contains"]))
    assert "evil" not in codes and "c-spine" in codes
    checked = send(live_server, "POST", "/CodeSystem/$validate-code", headers=JSON_HEADERS,
                   data=parameters({"name": "url", "valueUri": BODY_SITE},
                                   {"name": "code", "valueCode": "evil"}, *tx(forged)))
    assert {"name": "result", "valueBoolean": False} in checked.json()["parameter"]
    later = send(live_server, "GET", f"/CodeSystem/$lookup?system={BODY_SITE}&code=evil")
    check_outcome(later, 404, "evil", "code")


def test_tx_resource_value_set_with_a_loaded_url_stays_in_its_request(live_server: str) -> None:
    cpt_all = "http://terminology.hl7.org/ValueSet/cpt-all"
    forged = {"resourceType": "ValueSet", "url": cpt_all, "version": "1.0.0", "status": "active",
              "compose": {"include": [{"system": BODY_SITE}]}}
    send(live_server, "POST", EXPAND, headers=JSON_HEADERS,
         data=parameters({"name": "url", "valueUri": cpt_all}, *tx(forged)))
    for method in ("GET", "POST"):
        answer = send(live_server, method, f"{EXPAND}?url={cpt_all}" if method == "GET" else EXPAND,
                      **({} if method == "GET" else {"headers": JSON_HEADERS, "data": parameters(
                          {"name": "url", "valueUri": cpt_all})}))
        assert answer.status == 200
        systems = {c["system"] for c in answer.json()["expansion"]["contains"]}
        assert systems == {CPT_URL}


def test_server_content_is_intact_after_limits(live_server: str) -> None:
    lookup_72126_is_intact(live_server)
