"""Two synthetic CPT releases served side by side: code history, CodeSystem/$diff and
ValueSet/$diff against the changes the generator lists (real server, requests)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from terminology.cpt.synthetic_history import read_changes
from tests.conftest import running_server

CPT = "http://www.ama-assn.org/go/cpt"
RADIOLOGY = "https://terminology.cpt-imaging.org/fhir/ValueSet/all-radiology"
CAP = 10  # max_cpt_expansion of the server under test: below the changes of one release


@pytest.fixture(scope="module")
def history(cpt_history: Path) -> Path:
    """Releases 2025 and 2026 of 1,500 codes, imported, with their changes.json."""
    return cpt_history


@pytest.fixture(scope="module")
def changes(history: Path) -> dict[str, Any]:
    """The generator's list of what 2026 changes against 2025."""
    listed: dict[str, Any] = read_changes(history)["changes"][0]
    return listed


@pytest.fixture(scope="module")
def server(history: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real server with both releases and a CPT cap of 10 items per answer."""
    env = {"TX_MAX_CPT_EXPANSION": str(CAP)}
    args = ("--cpt", str(history / "cpt-2025.db"), "--cpt", str(history / "cpt-2026.db"))
    with running_server(tmp_path_factory.mktemp("server"), env, args, timeout=120) as (base, _proc):
        yield base


def get(base: str, path: str, **params: str) -> requests.Response:
    return requests.get(f"{base}/{path}", params=params, timeout=30)


def named(answer: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [p for p in answer["parameter"] if p["name"] == name]


def value(answer: dict[str, Any], name: str) -> Any:
    (p,) = named(answer, name)
    return next(v for k, v in p.items() if k.startswith("value"))


def parts(p: dict[str, Any]) -> dict[str, Any]:
    return {q["name"]: next(v for k, v in q.items() if k.startswith("value")) for q in p["part"]}


def diff_items(answer: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [parts(p) for p in named(answer, kind)]


def test_lookup_of_a_deleted_code_is_404_naming_the_last_release_and_descriptor(
        server: str, changes: dict[str, Any]) -> None:
    gone = changes["deleted"][0]
    r = get(server, "CodeSystem/$lookup", system=CPT, code=gone["code"])
    assert r.status_code == 404
    assert r.headers["Content-Type"].startswith("application/fhir+json")
    first, history = r.json()["issue"]
    assert "'2025'" in first["details"]["text"] and gone["display"] in first["details"]["text"]
    assert history["severity"] == "information"
    assert "first version '2025'" in history["details"]["text"]


def test_validate_code_of_a_deleted_code_is_false_naming_the_last_release(
        server: str, changes: dict[str, Any]) -> None:
    gone = changes["deleted"][1]
    r = get(server, "CodeSystem/$validate-code", url=CPT, code=gone["code"])
    answer = r.json()
    assert r.status_code == 200 and value(answer, "result") is False
    assert "last version that has it is '2025'" in value(answer, "message")
    assert gone["display"] in value(answer, "message")
    (issues,) = named(answer, "issues")
    ids = [i["extension"][0]["valueString"] for i in issues["resource"]["issue"]]
    assert ids == ["Unknown_Code_in_Version", "CODE_HISTORY"]


def test_a_deleted_code_is_valid_in_the_release_that_has_it(
        server: str, changes: dict[str, Any]) -> None:
    gone = changes["deleted"][0]
    looked = get(server, "CodeSystem/$lookup", system=CPT, code=gone["code"], version="2025")
    assert looked.status_code == 200 and value(looked.json(), "display") == gone["display"]
    checked = get(server, "CodeSystem/$validate-code", url=CPT, code=gone["code"], version="2025")
    assert value(checked.json(), "result") is True


def test_value_set_validation_of_a_deleted_code_names_the_last_release(
        server: str, changes: dict[str, Any]) -> None:
    gone = changes["deleted"][0]
    r = get(server, "ValueSet/$validate-code", url="http://terminology.hl7.org/ValueSet/cpt-all",
            system=CPT, code=gone["code"])
    assert value(r.json(), "result") is False
    assert "last version that has it is '2025'" in value(r.json(), "message")


def test_code_system_diff_lists_exactly_the_generators_changes(
        server: str, changes: dict[str, Any]) -> None:
    total = sum(len(changes[k]) for k in ("added", "deleted", "revised"))
    pages = [get(server, "CodeSystem/$diff", system=CPT, count=str(CAP), offset=str(start),
                 **{"from": "2025", "to": "2026"}).json() for start in range(0, total, CAP)]
    for kind in ("added", "deleted", "revised"):
        assert [item for page in pages for item in diff_items(page, kind)] == changes[kind]
    first = pages[0]
    assert value(first, "total") == total
    assert value(first, "totalAdded") == len(changes["added"])
    assert value(first, "totalDeleted") == len(changes["deleted"])
    assert value(first, "totalRevised") == len(changes["revised"])


def test_code_system_diff_by_post_pages_with_count_and_offset(
        server: str, changes: dict[str, Any]) -> None:
    body: dict[str, Any] = {"resourceType": "Parameters", "parameter": [
        {"name": "system", "valueUri": CPT}, {"name": "from", "valueString": "2025"},
        {"name": "to", "valueString": "2026"}, {"name": "count", "valueInteger": 3},
        {"name": "offset", "valueInteger": 2}]}
    r = requests.post(f"{server}/CodeSystem/$diff", json=body, timeout=30,
                      headers={"Content-Type": "application/fhir+json"})
    answer = r.json()
    assert value(answer, "offset") == 2
    assert [p["code"] for p in diff_items(answer, "added")] == [
        c["code"] for c in changes["added"][2:5]]


def test_code_system_diff_past_the_cpt_cap_is_too_costly(server: str) -> None:
    r = get(server, "CodeSystem/$diff", system=CPT, **{"from": "2025", "to": "2026"})
    assert r.status_code == 422  # every change at once: more than CAP descriptors
    assert r.json()["issue"][0]["code"] == "too-costly"


def test_code_system_diff_of_an_unknown_release_is_404_listing_the_known_ones(server: str) -> None:
    r = get(server, "CodeSystem/$diff", system=CPT, **{"from": "2019", "to": "2026"})
    assert r.status_code == 404
    assert "2025" in r.json()["issue"][0]["details"]["text"]


def test_code_system_diff_without_from_is_400_naming_it(server: str) -> None:
    r = get(server, "CodeSystem/$diff", system=CPT, to="2026")
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["from"]


def test_value_set_diff_reports_a_listed_deleted_code_and_codes_the_rule_picks_up(
        server: str, changes: dict[str, Any]) -> None:
    gone = next(c for c in changes["deleted"] if not c["code"].startswith("7"))
    order_set = {"resourceType": "ValueSet", "status": "active", "url": "urn:test:order-set",
                 "compose": {"include": [
                     {"system": CPT, "filter": [{"property": "code", "op": "in",
                                                 "value": "70010-79999"}]},
                     {"system": CPT, "concept": [{"code": gone["code"]}]}]}}
    body: dict[str, Any] = {"resourceType": "Parameters", "parameter": [
        {"name": "valueSet", "resource": order_set}, {"name": "from", "valueString": "2025"},
        {"name": "to", "valueString": "2026"}]}
    answer = requests.post(f"{server}/ValueSet/$diff", json=body, timeout=30).json()
    removed = {p["code"]: p for p in diff_items(answer, "removed")}
    assert removed[gone["code"]] == {**gone, "reason": "deleted", "listed": True}
    in_range = [c for c in changes["added"] if "70010" <= c["code"] <= "79999"]
    assert in_range, "the generator adds radiology codes every release"
    assert diff_items(answer, "added") == [{**c, "listed": False} for c in in_range]
    deleted_in_range = {c["code"] for c in changes["deleted"] if "70010" <= c["code"] <= "79999"}
    assert set(removed) == deleted_in_range | {gone["code"]}


def test_value_set_diff_of_a_bundled_order_set_by_url(server: str, changes: dict[str, Any]) -> None:
    r = get(server, "ValueSet/$diff", url=RADIOLOGY, **{"from": "2025", "to": "2026"})
    answer = r.json()
    assert r.status_code == 200, answer
    assert value(answer, "url") == RADIOLOGY
    assert [c["code"] for c in diff_items(answer, "added")] == [
        c["code"] for c in changes["added"] if "70010" <= c["code"] <= "79999"]
    assert all(p["reason"] == "deleted" for p in diff_items(answer, "removed"))


def test_the_diff_operations_are_in_the_capability_statement_and_openapi(server: str) -> None:
    meta = get(server, "metadata").json()
    ops = {(r["type"], o["name"]) for r in meta["rest"][0]["resource"]
           for o in r.get("operation", [])}
    assert {("CodeSystem", "diff"), ("ValueSet", "diff")} <= ops
    paths = get(server, "openapi.json").json()["paths"]
    assert "/fhir/CodeSystem/$diff" in paths and "/fhir/ValueSet/$diff" in paths
