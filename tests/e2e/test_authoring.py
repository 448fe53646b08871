"""Order-set authoring end to end: the real server (granian, 2 workers) with the SQLite store.

Every test talks HTTP to `terminology serve` on 127.0.0.1 with writes enabled by a static
token and by JWTs signed with a key made here; the store is a SQLite file in a temp dir.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from ..conftest import BODY_SITE, assert_fhir_valid, param_value
from .authoring_support import (
    AUDIENCE,
    FHIR,
    TOKEN,
    Server,
    bearer,
    body_site_value_set,
    json_of,
    make_jwt,
    rsa_key,
    running_server,
    writes_env,
)

KEY = rsa_key()
WRITE = bearer(TOKEN)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("authoring-data")


@pytest.fixture(scope="module")
def server(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("authoring"), writes_env(data_dir, KEY)) as s:
        yield s


def new_url() -> str:
    return f"http://example.test/fhir/ValueSet/order-set-{uuid.uuid4().hex[:8]}"


def create(server: Server, resource: dict[str, Any], headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(f"{server.base}/ValueSet", data=orjson.dumps(resource),
                         headers=headers or WRITE, timeout=30)


def put(server: Server, resource: dict[str, Any], if_match: str | None = None) -> requests.Response:
    headers = {**WRITE, **({"If-Match": if_match} if if_match else {})}
    return requests.put(f"{server.base}/ValueSet/{resource['id']}", data=orjson.dumps(resource),
                        headers=headers, timeout=30)


def stored_versions(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "store.sqlite3") as db:
        return int(db.execute("SELECT count(*) FROM tx_resource_version").fetchone()[0])


def expand_codes(server: Server, url: str) -> list[str]:
    resp = requests.get(f"{server.base}/ValueSet/$expand", params={"url": url}, timeout=30)
    assert resp.status_code == 200, resp.text
    return sorted(c["code"] for c in json_of(resp)["expansion"].get("contains", []))


# -- create, read, update, history, delete -------------------------------------------------------


def test_create_assigns_id_version_and_answers_location_etag(server: Server) -> None:
    resp = create(server, body_site_value_set(new_url(), ["knee"]))
    assert resp.status_code == 201, resp.text
    body = json_of(resp)
    assert_fhir_valid(body)
    assert body["meta"]["versionId"] == "1" and body["meta"]["lastUpdated"].endswith("Z")
    assert resp.headers["ETag"] == 'W/"1"'
    assert resp.headers["Location"] == f"{server.base}/ValueSet/{body['id']}/_history/1"
    assert "GMT" in resp.headers["Last-Modified"]
    read = requests.get(f"{server.base}/ValueSet/{body['id']}", timeout=10)
    assert read.status_code == 200 and json_of(read) == body
    assert read.headers["ETag"] == 'W/"1"'


def test_update_with_matching_if_match_succeeds_and_stale_is_412(server: Server) -> None:
    vs = json_of(create(server, body_site_value_set(new_url(), ["knee"])))
    changed = {**vs, "title": "Knee imaging"}
    ok = put(server, changed, 'W/"1"')
    assert ok.status_code == 200, ok.text
    assert ok.headers["ETag"] == 'W/"2"' and json_of(ok)["title"] == "Knee imaging"
    stale = put(server, {**vs, "title": "Lost update"}, 'W/"1"')
    assert stale.status_code == 412
    assert json_of(stale)["issue"][0]["expression"] == ["If-Match"]
    assert json_of(requests.get(f"{server.base}/ValueSet/{vs['id']}", timeout=10))["title"] == "Knee imaging"
    without = put(server, {**vs, "title": "Last writer"})  # no If-Match: last write wins
    assert without.status_code == 200 and without.headers["ETag"] == 'W/"3"'


def test_put_to_a_new_id_creates_it(server: Server) -> None:
    vs = {**body_site_value_set(new_url(), ["knee"]), "id": f"knee-{uuid.uuid4().hex[:6]}"}
    resp = put(server, vs)
    assert resp.status_code == 201 and resp.headers["ETag"] == 'W/"1"'


def test_history_lists_every_version_newest_first_and_vread_reads_one(server: Server) -> None:
    vs = json_of(create(server, body_site_value_set(new_url(), ["knee"])))
    put(server, {**vs, "title": "v2"}, 'W/"1"')
    history = requests.get(f"{server.base}/ValueSet/{vs['id']}/_history", timeout=10)
    assert history.status_code == 200
    bundle = json_of(history)
    assert_fhir_valid(bundle)
    assert bundle["type"] == "history" and bundle["total"] == 2
    assert [e["resource"]["meta"]["versionId"] for e in bundle["entry"]] == ["2", "1"]
    first = requests.get(f"{server.base}/ValueSet/{vs['id']}/_history/1", timeout=10)
    assert first.status_code == 200 and first.headers["ETag"] == 'W/"1"'
    assert "title" not in json_of(first)
    assert requests.get(f"{server.base}/ValueSet/{vs['id']}/_history/9", timeout=10).status_code == 404


def test_delete_then_read_is_410_and_history_keeps_the_delete(server: Server) -> None:
    url = new_url()
    vs = json_of(create(server, body_site_value_set(url, ["knee"])))
    gone = requests.delete(f"{server.base}/ValueSet/{vs['id']}", headers=WRITE, timeout=10)
    assert gone.status_code == 204
    for _ in range(4):  # whichever worker answers
        read = requests.get(f"{server.base}/ValueSet/{vs['id']}", timeout=10)
        assert read.status_code == 410
        assert json_of(read)["issue"][0]["code"] == "deleted"
    assert requests.get(f"{server.base}/ValueSet/{vs['id']}/_history/2", timeout=10).status_code == 410
    assert json_of(requests.get(f"{server.base}/ValueSet/{vs['id']}/_history", timeout=10))["total"] == 2
    expand = requests.get(f"{server.base}/ValueSet/$expand", params={"url": url}, timeout=10)
    assert expand.status_code == 404


def test_conditional_create_returns_the_existing_resource_instead_of_a_copy(server: Server, data_dir: Path) -> None:
    url = new_url()
    headers = {**WRITE, "If-None-Exist": f"url={url}&version=1"}
    first = create(server, body_site_value_set(url, ["knee"]), headers)
    assert first.status_code == 201
    before = stored_versions(data_dir)
    again = create(server, body_site_value_set(url, ["knee", "spine"]), headers)
    assert again.status_code == 200
    assert json_of(again)["id"] == json_of(first)["id"]
    assert stored_versions(data_dir) == before


def test_conditional_update_creates_then_updates_the_match(server: Server) -> None:
    url = new_url()
    where = f"{server.base}/ValueSet?url={url}&version=1"
    created = requests.put(where, data=orjson.dumps(body_site_value_set(url, ["knee"])),
                           headers=WRITE, timeout=10)
    assert created.status_code == 201, created.text
    updated = requests.put(where, data=orjson.dumps(body_site_value_set(url, ["knee", "c-spine"])),
                           headers=WRITE, timeout=10)
    assert updated.status_code == 200, updated.text
    assert json_of(updated)["id"] == json_of(created)["id"]
    assert updated.headers["ETag"] == 'W/"2"'


def test_prefer_minimal_and_operation_outcome(server: Server) -> None:
    minimal = create(server, body_site_value_set(new_url(), ["knee"]), {**WRITE, "Prefer": "return=minimal"})
    assert minimal.status_code == 201 and minimal.content == b"" and minimal.headers["Location"]
    outcome = create(server, {**body_site_value_set(new_url(), ["knee"]),
                              "compose": {"include": [{"system": "http://unknown.test/cs", "concept": [{"code": "x"}]}]}},
                     {**WRITE, "Prefer": "return=OperationOutcome"})
    assert outcome.status_code == 201
    issues = json_of(outcome)["issue"]
    assert issues[0]["severity"] == "information"
    assert any(i["severity"] == "warning" and i["expression"] == ["ValueSet.compose.include[0].system"]
               for i in issues)


# -- fresh answers right after a write ---------------------------------------------------------------


def test_expand_and_validate_code_never_answer_the_old_version(server: Server) -> None:
    url = new_url()
    vs = json_of(create(server, body_site_value_set(url, ["knee"])))
    for _ in range(6):  # both workers answer (and cache) version 1
        assert expand_codes(server, url) == ["knee"]
    check = {"url": url, "system": BODY_SITE, "code": "c-spine"}
    for _ in range(6):
        r = requests.get(f"{server.base}/ValueSet/$validate-code", params=check, timeout=10)
        assert param_value(json_of(r), "result") is False
    assert put(server, {**vs, "compose": body_site_value_set(url, ["knee", "c-spine"])["compose"]},
               'W/"1"').status_code == 200
    for _ in range(10):  # at once, on whichever worker, never the cached version 1
        assert expand_codes(server, url) == ["c-spine", "knee"]
        r = requests.get(f"{server.base}/ValueSet/$validate-code", params=check, timeout=10)
        assert param_value(json_of(r), "result") is True


def test_a_value_set_is_expandable_the_moment_it_is_created(server: Server) -> None:
    url = new_url()
    assert requests.get(f"{server.base}/ValueSet/$expand", params={"url": url}, timeout=10).status_code == 404
    assert create(server, body_site_value_set(url, ["t-spine"])).status_code == 201
    for _ in range(6):
        assert expand_codes(server, url) == ["t-spine"]


# -- validation: all or nothing -------------------------------------------------------------------


def rejected(server: Server, data_dir: Path, resource: dict[str, Any]) -> dict[str, Any]:
    before = stored_versions(data_dir)
    resp = create(server, resource)
    assert resp.status_code == 422, resp.text
    assert resp.headers["Content-Type"].startswith(FHIR)
    body = json_of(resp)
    assert_fhir_valid(body)
    assert stored_versions(data_dir) == before  # nothing stored
    return body


def expressions(outcome: dict[str, Any], severity: str = "error") -> list[str]:
    return [e for i in outcome["issue"] if i["severity"] == severity for e in i.get("expression", [])]


def test_unknown_concept_and_bad_structure_are_422_naming_each_element(server: Server, data_dir: Path) -> None:
    vs = body_site_value_set(new_url(), ["knee", "elbow"])
    vs["compose"]["include"][0]["concept"][0]["display"] = "Kneecap"
    body = rejected(server, data_dir, vs)
    assert expressions(body) == ["ValueSet.compose.include[0].concept[1].code"]
    assert expressions(body, "warning") == ["ValueSet.compose.include[0].concept[0].display"]
    broken = {**body_site_value_set(new_url(), ["knee"]), "status": "finished"}
    assert "ValueSet.status" in expressions(rejected(server, data_dir, broken))


def test_unexpandable_value_sets_are_rejected(server: Server, data_dir: Path) -> None:
    url = new_url()
    cycle = {**body_site_value_set(url, []), "compose": {"include": [{"valueSet": [url]}]}}
    body = rejected(server, data_dir, cycle)
    assert expressions(body) == ["ValueSet.compose"]
    assert "circular" in body["issue"][0]["details"]["text"].lower()
    missing = {**body_site_value_set(new_url(), []),
               "compose": {"include": [{"valueSet": ["http://example.test/fhir/ValueSet/nowhere"]}]}}
    assert expressions(rejected(server, data_dir, missing)) == ["ValueSet.compose.include[0].valueSet[0]"]


def test_bundled_content_cannot_be_shadowed_or_overwritten(server: Server, data_dir: Path) -> None:
    bundled = json_of(requests.get(f"{server.base}/ValueSet?_count=1", timeout=10))["entry"][0]["resource"]
    shadow = {**body_site_value_set(bundled["url"], ["knee"]), "version": "999"}
    assert expressions(rejected(server, data_dir, shadow)) == ["ValueSet.url"]
    over = requests.put(f"{server.base}/ValueSet/{bundled['id']}", headers=WRITE, timeout=10,
                        data=orjson.dumps({**body_site_value_set(new_url(), ["knee"]), "id": bundled["id"]}))
    assert over.status_code == 405
    cpt = {"resourceType": "CodeSystem", "url": "http://www.ama-assn.org/go/cpt", "version": "2099",
           "status": "draft", "content": "complete", "concept": [{"code": "00000"}]}
    resp = requests.post(f"{server.base}/CodeSystem", data=orjson.dumps(cpt), headers=WRITE, timeout=10)
    assert resp.status_code == 422 and expressions(json_of(resp)) == ["CodeSystem.url"]


def test_url_and_version_stay_unique(server: Server, data_dir: Path) -> None:
    url = new_url()
    assert create(server, body_site_value_set(url, ["knee"])).status_code == 201
    body = rejected(server, data_dir, body_site_value_set(url, ["spine"]))
    assert body["issue"][0]["code"] == "duplicate"
    assert create(server, body_site_value_set(url, ["spine"], version="2")).status_code == 201


# -- who may write ------------------------------------------------------------------------------------


def assert_401(resp: requests.Response) -> None:
    assert resp.status_code == 401, resp.text
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert json_of(resp)["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("authorization", [
    None, "Basic dXNlcjpwYXNz", "Bearer", "Bearer wrong-token", f"Bearer {TOKEN}x",
    "Bearer " + make_jwt(rsa_key(), "system/ValueSet.cud"),  # signed by another key
    "Bearer " + make_jwt(KEY, "system/ValueSet.cud", exp=1_000_000),  # expired
    "Bearer " + make_jwt(KEY, "system/ValueSet.cud", iss="https://evil.test"),
    "Bearer " + make_jwt(KEY, "system/ValueSet.cud", aud="https://other.test"),
    "Bearer " + make_jwt(KEY, "system/ValueSet.cud", exp=None),  # no expiry
], ids=["none", "basic", "empty", "unknown", "near-miss", "other-key", "expired", "issuer",
        "audience", "no-exp"])
def test_a_missing_or_bad_token_is_401(server: Server, authorization: str | None, data_dir: Path) -> None:
    headers = {"Content-Type": FHIR, **({"Authorization": authorization} if authorization else {})}
    before = stored_versions(data_dir)
    assert_401(create(server, body_site_value_set(new_url(), ["knee"]), headers))
    assert stored_versions(data_dir) == before


@pytest.mark.parametrize("scope", ["system/ValueSet.read", "system/ValueSet.rs", "user/*.rs",
                                   "system/ConceptMap.cud", "patient/ValueSet.cud", "openid profile"])
def test_a_token_without_the_create_scope_is_403(server: Server, scope: str) -> None:
    resp = create(server, body_site_value_set(new_url(), ["knee"]), bearer(make_jwt(KEY, scope)))
    assert resp.status_code == 403, resp.text
    assert "insufficient_scope" in resp.headers["WWW-Authenticate"]
    assert json_of(resp)["issue"][0]["code"] == "forbidden"


def test_jwt_scopes_allow_exactly_their_interactions(server: Server) -> None:
    creator = bearer(make_jwt(KEY, "user/ValueSet.c user/ValueSet.rs"))
    created = create(server, body_site_value_set(new_url(), ["knee"]), creator)
    assert created.status_code == 201
    vs = json_of(created)
    denied = requests.put(f"{server.base}/ValueSet/{vs['id']}", data=orjson.dumps(vs), headers=creator, timeout=10)
    assert denied.status_code == 403  # c without u
    editor = bearer(make_jwt(KEY, "user/*.cud"))
    assert requests.put(f"{server.base}/ValueSet/{vs['id']}", data=orjson.dumps(vs), headers=editor,
                        timeout=10).status_code == 200
    assert requests.delete(f"{server.base}/ValueSet/{vs['id']}", headers=creator, timeout=10).status_code == 403
    assert requests.delete(f"{server.base}/ValueSet/{vs['id']}", headers=editor, timeout=10).status_code == 204


def test_every_write_is_one_audit_line_and_no_token_is_logged(server: Server) -> None:
    vs = json_of(create(server, body_site_value_set(new_url(), ["knee"]), bearer(make_jwt(KEY, "system/*.cud"))))
    create(server, body_site_value_set(new_url(), ["knee"]), bearer("wrong-token"))
    lines = [orjson.loads(line) for line in server.log_text().splitlines()
             if line.startswith("{") and '"action"' in line]
    mine = [e for e in lines if e.get("id") == vs["id"]]
    assert len(mine) == 1
    assert mine[0]["who"] == "author-1" and mine[0]["action"] == "create"
    assert mine[0]["versionId"] == 1 and mine[0]["outcome"] == "success" and mine[0]["status"] == 201
    assert any(e["status"] == 401 and e["outcome"] == "failure" for e in lines)
    assert TOKEN not in server.log_text() and "wrong-token" not in server.log_text()


def test_capability_statement_lists_writes_and_security(server: Server) -> None:
    cs = json_of(requests.get(f"{server.base}/metadata", timeout=10))
    assert_fhir_valid(cs)
    rest = cs["rest"][0]
    vs = next(r for r in rest["resource"] if r["type"] == "ValueSet")
    codes = {i["code"] for i in vs["interaction"]}
    assert {"read", "create", "update", "delete", "vread", "history-instance"} <= codes
    assert vs["versioning"] == "versioned-update" and vs["conditionalCreate"] is True
    assert rest["security"]["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    assert AUDIENCE not in str(rest["security"])  # no configuration detail beyond the scheme


# -- concurrency ----------------------------------------------------------------------------------------


def race(server: Server, base: dict[str, Any], etag: str, label: str, threads: int) -> list[tuple[int, str]]:
    """`threads` authors PUT their own title over the same version at once; (status, title)s."""
    barrier = threading.Barrier(threads)
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def author(n: int) -> None:
        title = f"{label} author {n}"
        barrier.wait()
        resp = put(server, {**base, "title": title}, etag)
        with lock:
            results.append((resp.status_code, title))

    workers = [threading.Thread(target=author, args=(n,)) for n in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return results


def test_twenty_concurrent_authors_one_winner_per_version_no_lost_update(server: Server) -> None:
    vs = json_of(create(server, body_site_value_set(new_url(), ["knee"])))
    rounds, threads = 3, 20
    winners: list[str] = []
    for r in range(rounds):
        current = requests.get(f"{server.base}/ValueSet/{vs['id']}", timeout=10)
        results = race(server, json_of(current), current.headers["ETag"], f"round {r}", threads)
        statuses = sorted(s for s, _ in results)
        assert statuses == [200] + [412] * (threads - 1), statuses
        winners.append(next(title for s, title in results if s == 200))
    history = json_of(requests.get(f"{server.base}/ValueSet/{vs['id']}/_history", timeout=10))
    assert history["total"] == rounds + 1
    titles = [e["resource"].get("title") for e in reversed(history["entry"])][1:]
    assert titles == winners  # every winning write is a version: none lost


# -- restart ---------------------------------------------------------------------------------------------


def test_writes_survive_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = writes_env(data, KEY)
    url = new_url()
    with running_server(tmp_path / "first", env, workers=1) as first:
        vs = json_of(create(first, body_site_value_set(url, ["knee"])))
        assert put(first, {**vs, "title": "second"}, 'W/"1"').status_code == 200
    with running_server(tmp_path / "second", env, workers=1) as second:
        read = requests.get(f"{second.base}/ValueSet/{vs['id']}", timeout=10)
        assert read.status_code == 200 and read.headers["ETag"] == 'W/"2"'
        assert json_of(read)["title"] == "second"
        assert expand_codes(second, url) == ["knee"]


# -- code systems and concept maps ------------------------------------------------------------------


def test_a_local_code_system_is_served_by_lookup_once_written(server: Server) -> None:
    url = f"http://example.test/fhir/CodeSystem/local-{uuid.uuid4().hex[:8]}"
    cs = {"resourceType": "CodeSystem", "url": url, "version": "1", "status": "draft",
          "content": "complete", "caseSensitive": True,
          "concept": [{"code": "mri-knee-l", "display": "MRI knee, left"}]}
    created = requests.post(f"{server.base}/CodeSystem", data=orjson.dumps(cs), headers=WRITE, timeout=10)
    assert created.status_code == 201, created.text
    rid = json_of(created)["id"]
    read = requests.get(f"{server.base}/CodeSystem/{rid}", timeout=10)
    assert read.headers["ETag"] == 'W/"1"' and json_of(read)["concept"][0]["code"] == "mri-knee-l"
    for _ in range(4):
        lookup = requests.get(f"{server.base}/CodeSystem/$lookup", params={"system": url, "code": "mri-knee-l"},
                              timeout=10)
        assert param_value(json_of(lookup), "display") == "MRI knee, left"
    cs2 = {**json_of(read), "concept": [{"code": "mri-knee-l", "display": "MRI of the left knee"}]}
    assert requests.put(f"{server.base}/CodeSystem/{rid}", data=orjson.dumps(cs2), timeout=10,
                        headers={**WRITE, "If-Match": 'W/"1"'}).status_code == 200
    for _ in range(4):
        lookup = requests.get(f"{server.base}/CodeSystem/$lookup", params={"system": url, "code": "mri-knee-l"},
                              timeout=10)
        assert param_value(json_of(lookup), "display") == "MRI of the left knee"


def test_a_concept_map_is_used_by_translate_and_its_codes_are_checked(server: Server, data_dir: Path) -> None:
    url = f"http://example.test/fhir/ConceptMap/cm-{uuid.uuid4().hex[:8]}"
    cm: dict[str, Any] = {"resourceType": "ConceptMap", "url": url, "version": "1", "status": "draft",
          "group": [{"source": BODY_SITE, "target": "http://example.test/fhir/CodeSystem/other",
                     "element": [{"code": "knee", "target": [{"code": "K", "equivalence": "equivalent"}]}]}]}
    created = requests.post(f"{server.base}/ConceptMap", data=orjson.dumps(cm), headers=WRITE, timeout=10)
    assert created.status_code == 201, created.text
    for _ in range(4):
        out = requests.get(f"{server.base}/ConceptMap/$translate",
                           params={"url": url, "system": BODY_SITE, "code": "knee"}, timeout=10)
        assert param_value(json_of(out), "result") is True
    before = stored_versions(data_dir)
    bad = orjson.loads(orjson.dumps({**cm, "url": url + "-bad"}))
    bad["group"][0]["element"][0]["code"] = "elbow"
    resp = requests.post(f"{server.base}/ConceptMap", data=orjson.dumps(bad), headers=WRITE, timeout=10)
    assert resp.status_code == 422
    assert expressions(json_of(resp)) == ["ConceptMap.group[0].element[0].code"]
    assert stored_versions(data_dir) == before


def test_a_deleted_resource_is_created_again_by_put_as_its_next_version(server: Server) -> None:
    vs = json_of(create(server, body_site_value_set(new_url(), ["knee"])))
    assert requests.delete(f"{server.base}/ValueSet/{vs['id']}", headers=WRITE, timeout=10).status_code == 204
    again = put(server, {**vs, "title": "back"})
    assert again.status_code == 201 and again.headers["ETag"] == 'W/"3"'
    read = requests.get(f"{server.base}/ValueSet/{vs['id']}", timeout=10)
    assert read.status_code == 200 and json_of(read)["title"] == "back"
