"""Licence boundaries that hold on every path (issue 30), against the real server with a
licensed synthetic release of 3,000 codes and the CPT cap at its default of 1,000: no single
answer carries more than the cap of distinct CPT descriptors, whatever the path; validation
results stay right; writes may not take the server's own URLs; every body passes the one
reader; a write route checks the token before anything else."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from terminology.cpt.ama.importer import import_to_db
from terminology.cpt.synthetic import write_synthetic_release
from terminology.settings import Settings

from ..conftest import CPT_URL
from ..e2e.authoring_support import TOKEN, Server, bearer, rsa_key, running_server, writes_env

CAP = Settings().max_cpt_expansion
CODES = 3 * CAP
CPT_ALL = "http://terminology.hl7.org/ValueSet/cpt-all"
JSON = {"Content-Type": "application/fhir+json"}
WRITE = bearer(TOKEN)


@dataclass(frozen=True)
class Release:
    """The synthetic release: its codes (modifiers aside) and every descriptor it holds."""

    db: Path
    codes: list[str]
    texts: frozenset[str]


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    tmp = tmp_path_factory.mktemp("licensed-release")
    write_synthetic_release(tmp / "release", n_codes=CODES)
    import_to_db(tmp / "release", "2025", tmp / "cpt.db")
    with sqlite3.connect(tmp / "cpt.db") as db:
        codes = [c for (c,) in db.execute("SELECT code FROM Concepts WHERE modifier = 0 ORDER BY code")]
        texts = frozenset(v for (v,) in db.execute("SELECT DISTINCT value FROM Designations"))
    assert len(codes) == CODES
    return Release(tmp / "cpt.db", codes, texts)


@pytest.fixture(scope="module")
def server(release: Release, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Writes on (static token), the cap at its default, the licensed release loaded."""
    work = tmp_path_factory.mktemp("licensed-server")
    env = writes_env(work / "data", rsa_key(), TX_CPT_DATABASES=str(release.db))
    with running_server(work, env) as s:
        yield s


def descriptors(answer: Any, texts: frozenset[str]) -> set[str]:
    """The distinct descriptors an answer carries: as a value, or quoted in a message."""
    found: set[str] = set()
    stack = [answer]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if item in texts:
                found.add(item)
            quotes = [i for i, c in enumerate(item) if c == "'"]
            found.update(item[a + 1:b] for i, a in enumerate(quotes) for b in quotes[i + 1:i + 40]
                         if item[a + 1:b] in texts)
    return found


def post(server: Server, path: str, body: dict[str, Any], headers: dict[str, str] | None = None,
         method: str = "POST") -> requests.Response:
    return requests.request(method, f"{server.base}{path}", data=orjson.dumps(body),
                            headers=headers or JSON, timeout=120)


def wrong_displays(codes: list[str]) -> dict[str, Any]:
    return {"coding": [{"system": CPT_URL, "code": c, "display": "x"} for c in codes]}


def param(answer: dict[str, Any], name: str) -> Any:
    for p in answer.get("parameter", []):
        if p["name"] == name:
            return next((v for k, v in p.items() if k.startswith("value") or k == "resource"), None)
    return None


# -- one count per answer, every path --------------------------------------------------------------


@pytest.mark.parametrize("rtype", ["CodeSystem", "ValueSet"])
def test_validate_code_with_every_display_wrong_names_at_most_the_cap(
        server: Server, release: Release, rtype: str) -> None:
    params: list[dict[str, Any]] = [{"name": "codeableConcept",
                                     "valueCodeableConcept": wrong_displays(release.codes)}]
    if rtype == "ValueSet":
        params.append({"name": "url", "valueUri": CPT_ALL})
    resp = post(server, f"/{rtype}/$validate-code", {"resourceType": "Parameters", "parameter": params})
    assert resp.status_code == 200, resp.text[:300]
    answer = resp.json()
    assert param(answer, "result") is False
    texts = [i["details"]["text"] for i in param(answer, "issues")["issue"]]
    wrong = [t for t in texts if t.startswith("Wrong Display Name 'x'")]
    assert len(wrong) == CODES  # every coding is still found wrong
    assert len(descriptors(answer, release.texts)) == CAP
    assert sum("not shown" in t for t in wrong) == CODES - CAP


def test_batch_validate_code_counts_its_validations_together(server: Server, release: Release) -> None:
    groups = [release.codes[i:i + 3] for i in range(0, CODES, 3)]  # 1,000 validations of 3 codings
    validations = [{"name": "validation", "resource": {"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": CPT_ALL},
        {"name": "codeableConcept", "valueCodeableConcept": wrong_displays(group)}]}} for group in groups]
    resp = post(server, "/ValueSet/$batch-validate-code", {"resourceType": "Parameters", "parameter": validations})
    assert resp.status_code == 200, resp.text[:300]
    answer = resp.json()
    results = [param(p["resource"], "result") for p in answer["parameter"] if p["name"] == "validation"]
    assert results == [False] * len(groups)
    assert len(descriptors(answer, release.texts)) == CAP


def test_a_batch_of_range_expansions_sums_its_entries(server: Server, release: Release) -> None:
    size = CODES // 10
    entries = [{"request": {"method": "POST", "url": "ValueSet/$expand"}, "resource": {
        "resourceType": "Parameters", "parameter": [{"name": "valueSet", "resource": {
            "resourceType": "ValueSet", "status": "active", "compose": {"include": [{
                "system": CPT_URL, "concept": [{"code": c} for c in release.codes[i * size:(i + 1) * size]]}]}}}]}}
        for i in range(10)]
    resp = post(server, "", {"resourceType": "Bundle", "type": "batch", "entry": entries})
    assert resp.status_code == 200, resp.text[:300]
    bundle = resp.json()
    assert len(descriptors(bundle, release.texts)) <= CAP
    statuses = [e["response"]["status"] for e in bundle["entry"]]
    fits = CAP // size
    assert statuses == ["200 OK"] * fits + ["422 Unprocessable Entity"] * (10 - fits)
    refused = bundle["entry"][-1]["resource"]
    assert refused["issue"][0]["code"] == "too-costly"
    assert "max_cpt_expansion" in refused["issue"][0]["details"]["text"]


def cpt_order_set(codes: list[str], display: str = "x") -> dict[str, Any]:
    return {"resourceType": "ValueSet", "url": f"http://example.test/vs/{uuid.uuid4().hex[:8]}",
            "status": "draft", "name": "CptOrderSet", "compose": {"include": [{
                "system": CPT_URL, "concept": [{"code": c, "display": display} for c in codes]}]}}


def test_a_rejected_write_names_at_most_the_cap(server: Server, release: Release) -> None:
    resource = cpt_order_set(release.codes)
    resource["compose"]["include"][0]["concept"].append({"code": "00000"})  # unknown: an error
    resp = post(server, "/ValueSet", resource, WRITE)
    assert resp.status_code == 422, resp.text[:300]
    outcome = resp.json()
    assert len(descriptors(outcome, release.texts)) <= CAP
    assert sum("x" in i["details"]["text"] for i in outcome["issue"]) >= CODES  # every warning kept


def test_a_stored_write_warns_with_at_most_the_cap(server: Server, release: Release) -> None:
    resp = post(server, "/ValueSet", cpt_order_set(release.codes),
                {**WRITE, "Prefer": "return=OperationOutcome"})
    assert resp.status_code == 201, resp.text[:300]
    assert len(descriptors(resp.json(), release.texts)) <= CAP


# -- reserved URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize(("rtype", "url"), [
    ("ValueSet", f"{CPT_URL}?fhir_vs"),
    ("ValueSet", f"{CPT_URL}?fhir_vs=isa/99213"),
    ("ValueSet", CPT_ALL),  # bundled
    ("ValueSet", CPT_URL),  # a hosted code system's url, whatever the type
    ("CodeSystem", CPT_URL),
])
def test_a_write_may_not_take_a_url_the_server_computes_or_serves(
        server: Server, release: Release, rtype: str, url: str) -> None:
    resource: dict[str, Any] = {"resourceType": rtype, "url": url, "status": "draft", "version": "2099"}
    if rtype == "ValueSet":
        resource["compose"] = {"include": [{"system": CPT_URL, "concept": [{"code": release.codes[0]}]}]}
    else:
        resource.update(content="complete", concept=[{"code": "fake"}])
    resp = post(server, f"/{rtype}", resource, WRITE)
    assert resp.status_code == 422, resp.text[:300]
    issue = resp.json()["issue"][0]
    assert issue["expression"] == [f"{rtype}.url"]
    expanded = requests.get(f"{server.base}/ValueSet/$expand",
                            params={"url": f"{CPT_URL}?fhir_vs", "count": "5"}, timeout=60)
    assert expanded.status_code == 200
    assert expanded.json()["expansion"]["total"] >= CODES
    checked = requests.get(f"{server.base}/ValueSet/$validate-code", timeout=60, params={
        "url": f"{CPT_URL}?fhir_vs", "system": CPT_URL, "code": release.codes[-1]})
    assert param(checked.json(), "result") is True


# -- one body reader, auth first --------------------------------------------------------------


def nested_concepts(depth: int) -> bytes:
    """A CodeSystem whose concepts nest `depth` levels (written as text: JSON libraries refuse
    to write what nests this deep)."""
    head = (f'{{"resourceType":"CodeSystem","url":"http://example.test/cs/{uuid.uuid4().hex[:8]}",'
            '"status":"draft","content":"complete","concept":[')
    inner = "".join(f'{{"code":"c{i}","concept":[' for i in range(depth)) + "]}" * depth
    return (head + inner + "]}").encode()


def test_a_deeply_nested_write_is_a_400_and_no_worker_dies(server: Server) -> None:
    stop = threading.Event()
    lookups: list[int] = []

    def lookup_meanwhile() -> None:
        for _ in range(200):
            if stop.is_set():
                return
            lookups.append(requests.get(f"{server.base}/metadata", timeout=30).status_code)

    other = threading.Thread(target=lookup_meanwhile)
    other.start()
    try:
        answers = [requests.post(f"{server.base}/CodeSystem", data=nested_concepts(depth), headers=WRITE,
                                 timeout=60) for depth in (160, 300, 300)]
    finally:
        stop.set()
        other.join(60)
    for resp in answers:
        assert resp.status_code == 400, resp.text[:300]
        assert "max_json_depth" in resp.json()["issue"][0]["details"]["text"]
    assert lookups and set(lookups) == {200}
    assert requests.get(f"{server.base}/metadata", timeout=30).status_code == 200
    assert "Worker" not in server.log_text() or "died" not in server.log_text()


def test_a_conditional_write_without_a_token_is_a_401_and_names_nothing(
        server: Server, release: Release) -> None:
    stored = post(server, "/ValueSet", cpt_order_set(release.codes[:3]), WRITE)
    assert stored.status_code == 201
    rid, url = stored.json()["id"], stored.json()["url"]
    update = cpt_order_set(release.codes[:2]) | {"url": url}
    resp = requests.put(f"{server.base}/ValueSet", params={"url": url}, data=orjson.dumps(update),
                        headers=JSON, timeout=60)
    assert resp.status_code == 401
    assert rid not in resp.text
    bad = requests.put(f"{server.base}/ValueSet", params={"url": url}, data=b"{not json",
                       headers=JSON, timeout=60)
    assert bad.status_code == 401  # the token first, the body after


@pytest.mark.parametrize("rid", [".", ".."])
def test_dot_ids_are_refused_with_the_reason(server: Server, release: Release, rid: str) -> None:
    resource = cpt_order_set(release.codes[:1]) | {"id": rid}
    resp = requests.put(f"{server.base}/ValueSet", params={"url": resource["url"]},
                        data=orjson.dumps(resource), headers=WRITE, timeout=60)
    assert resp.status_code == 400
    text = resp.json()["issue"][0]["details"]["text"]
    assert f"'{rid}'" in text and "path segment" in text
