"""16 threads mixing every kind of request against one live server: each answer must be the
same as the one the server gives when asked alone (timestamps and identifiers aside)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import requests

from ..conftest import BODY_SITE, CPT_URL
from .conftest import FHIR_JSON, lookup_72126_is_intact, parameters

THREADS = 16
REQUESTS = 960  # 60 per thread
VOLATILE = frozenset({"timestamp", "identifier"})  # differ on every expansion
CPT_ALL = "http://terminology.hl7.org/ValueSet/cpt-all"
JSON = {"Content-Type": FHIR_JSON}

Spec = tuple[str, str, bytes | None, dict[str, str]]


def post(path: str, *params: dict[str, Any]) -> Spec:
    return ("POST", path, parameters(*params), JSON)


def get(path: str, headers: dict[str, str] | None = None) -> Spec:
    return ("GET", path, None, headers or {})


def overlay_value_set(n: int) -> dict[str, Any]:
    """A tx-resource code system and value set unique to request variant `n`."""
    url = f"http://example.test/CodeSystem/c{n}"
    return {"resourceType": "CodeSystem", "url": url, "status": "active", "content": "complete",
            "concept": [{"code": f"k{n}-{i}", "display": f"Concept {i} of {n}"} for i in range(n + 1)]}


def specs() -> list[Spec]:
    """One of every kind of request: operations, reads, searches and errors."""
    out: list[Spec] = [
        get(f"/CodeSystem/$lookup?system={CPT_URL}&code=72126"),
        get(f"/CodeSystem/$lookup?system={BODY_SITE}&code=c-spine&property=parent"),
        post("/CodeSystem/$lookup", {"name": "system", "valueUri": CPT_URL},
             {"name": "code", "valueCode": "72125"}),
        get(f"/CodeSystem/$validate-code?url={CPT_URL}&code=72126"),
        get(f"/CodeSystem/$validate-code?url={BODY_SITE}&code=nope"),
        post("/ValueSet/$validate-code", {"name": "url", "valueUri": CPT_ALL},
             {"name": "coding", "valueCoding": {"system": CPT_URL, "code": "72126", "display": "Wrong"}}),
        post("/ValueSet/$validate-code", {"name": "url", "valueUri": CPT_ALL},
             {"name": "codeableConcept", "valueCodeableConcept": {"coding": [
                 {"system": BODY_SITE, "code": "c-spine"}, {"system": CPT_URL, "code": "72126"}]}}),
        get(f"/ValueSet/$expand?url={CPT_ALL}&count=10&offset=5"),
        get(f"/ValueSet/$expand?url={CPT_ALL}&filter=spine"),
        post("/ValueSet/$expand", {"name": "url", "valueUri": CPT_ALL}, {"name": "count", "valueInteger": 0}),
        get(f"/CodeSystem/$subsumes?system={BODY_SITE}&codeA=spine&codeB=c-spine"),
        get(f"/CodeSystem/$subsumes?system={BODY_SITE}&codeA=limb&codeB=c-spine"),
        get("/CodeSystem/test-body-site"),
        get("/ValueSet/cpt-all"),
        get(f"/CodeSystem?url={BODY_SITE}"),
        get("/ValueSet?_count=2"),
        get("/metadata"),
        get("/metadata?mode=terminology"),
        get(f"/CodeSystem/$lookup?system={CPT_URL}&code=72126", {"Accept-Language": "de"}),
        # errors
        get(f"/ValueSet/$expand?url={CPT_ALL}&count=abc"),
        get(f"/CodeSystem/$lookup?system={CPT_URL}&code=00000"),
        get("/ValueSet/$expand?url=http://example.test/none"),
        get(f"/CodeSystem/$lookup?system={CPT_URL}&code=%FF"),
        get("/CodeSystem/$lookup", {"Accept": "text/html"}),
        ("POST", "/CodeSystem/$lookup", b"{broken", JSON),
        ("POST", "/CodeSystem/$lookup", b"<x/>", {"Content-Type": "text/plain"}),
        ("DELETE", "/ValueSet/cpt-all", None, {}),
        post("/ConceptMap/$translate", {"name": "code", "valueCode": "72126"},
             {"name": "system", "valueUri": CPT_URL}),
    ]
    # request-scoped content: each overlay must see only its own code system
    for n in (1, 2, 3):
        cs = overlay_value_set(n)
        vs = {"resourceType": "ValueSet", "url": f"http://example.test/ValueSet/v{n}", "status": "active",
              "compose": {"include": [{"system": cs["url"]}]}}
        out.append(post("/ValueSet/$expand", {"name": "url", "valueUri": vs["url"]},
                        {"name": "tx-resource", "resource": cs}, {"name": "tx-resource", "resource": vs}))
    return out


def normalized(value: Any) -> Any:
    """The answer without what legitimately differs between two identical requests."""
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def ask(session: requests.Session, base: str, spec: Spec) -> tuple[int, str, Any]:
    method, path, body, headers = spec
    resp = session.request(method, base + path, data=body, headers=headers, timeout=30)
    return resp.status_code, resp.headers.get("Content-Type", ""), normalized(orjson.loads(resp.content))


def test_concurrent_mixed_requests_match_the_single_threaded_answers(live_server: str) -> None:
    kinds = specs()
    with requests.Session() as session:
        expected = [ask(session, live_server, s) for s in kinds]
    assert all(ctype.startswith(FHIR_JSON) for _, ctype, _ in expected)
    assert {status for status, _, _ in expected} >= {200, 400, 404, 405, 406, 415}

    local = threading.local()

    def one(i: int) -> tuple[int, tuple[int, str, Any]]:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        k = (i * 7 + i // len(kinds)) % len(kinds)  # a fixed schedule that mixes the kinds
        return k, ask(local.session, live_server, kinds[k])

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(one, range(REQUESTS)))
    mismatches = [(kinds[k][:2], got[:2]) for k, got in results if got != expected[k]]
    assert not mismatches, mismatches[:5]
    assert len(results) == REQUESTS
    lookup_72126_is_intact(live_server)
