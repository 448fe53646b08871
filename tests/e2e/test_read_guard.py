"""Who may read (issue 30) against the real server, with a licensed synthetic CPT release:

- TX_READ_REQUIRES_TOKEN guards every route that shows content: a walk over every registered
  route proves each is guarded or on the open list, and a browser page without a token is a
  401 page that asks for one and shows nothing else;
- TX_CPT_TEXT_REQUIRES_TOKEN: without a token with a read scope, codes and results but no
  AMA descriptor, on the API and in the browser (with a notice); with one (static or JWT),
  everything.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from terminology.cpt.ama.importer import import_to_db
from terminology.cpt.synthetic import write_synthetic_release
from terminology.http.app import create_app
from terminology.registry import Registry
from terminology.settings import Settings

from ..conftest import CPT_URL
from .authoring_support import TOKEN, Server, make_jwt, rsa_key, running_server, writes_env

KEY = rsa_key()
CPT_ALL = "http://terminology.hl7.org/ValueSet/cpt-all"
OPEN = {"/fhir/metadata", "/healthz", "/readyz", "/metrics", "/assets/<path:filename>"}
SAMPLE_ARGS = {"rtype": "ValueSet", "rid": "x", "op": "expand", "vid": "1", "filename": "app.css"}


@dataclass(frozen=True)
class Release:
    db: Path
    code: str
    texts: frozenset[str]


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    tmp = tmp_path_factory.mktemp("guard-release")
    write_synthetic_release(tmp / "release", n_codes=300)
    import_to_db(tmp / "release", "2025", tmp / "cpt.db")
    with sqlite3.connect(tmp / "cpt.db") as db:
        code = db.execute("SELECT code FROM Concepts WHERE modifier = 0 ORDER BY code").fetchone()[0]
        texts = frozenset(v for (v,) in db.execute("SELECT DISTINCT value FROM Designations"))
    return Release(tmp / "cpt.db", code, texts)


def serve(tmp_path_factory: pytest.TempPathFactory, release: Release, **env: str) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("guard-server")
    with running_server(work, writes_env(work / "data", KEY, TX_CPT_DATABASES=str(release.db), **env),
                        workers=1) as s:
        yield s


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, release: Release) -> Iterator[Server]:
    yield from serve(tmp_path_factory, release, TX_READ_REQUIRES_TOKEN="true")


@pytest.fixture(scope="module")
def text_guarded(tmp_path_factory: pytest.TempPathFactory, release: Release) -> Iterator[Server]:
    yield from serve(tmp_path_factory, release, TX_CPT_TEXT_REQUIRES_TOKEN="true")


def root(server: Server) -> str:
    return server.base.removesuffix("/fhir")


def shows_text(body: bytes | str, texts: frozenset[str]) -> bool:
    text = body if isinstance(body, str) else body.decode(errors="replace")
    return any(t in text for t in texts)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- TX_READ_REQUIRES_TOKEN -------------------------------------------------------------------


def registered_routes() -> list[tuple[str, str, str]]:
    """(rule, method, sample url path) for every route the app registers."""
    app = create_app(Settings(write_tokens="t"), Registry())
    out = []
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: SAMPLE_ARGS.get(m.group(1), "x"), rule.rule)
        out += [(rule.rule, method, path) for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})]
    return out


def test_every_registered_route_is_guarded_or_open(guarded: Server, release: Release) -> None:
    routes = registered_routes()
    assert len(routes) > 20
    for rule, method, path in routes:
        body = orjson.dumps({"resourceType": "Parameters"}) if method in ("POST", "PUT") else None
        resp = requests.request(method, root(guarded) + path, data=body, timeout=60,
                                headers={"Content-Type": "application/fhir+json"})
        where = f"{method} {rule}"
        assert not shows_text(resp.content, release.texts), where
        if rule in OPEN:
            assert resp.status_code != 401, where
        elif method in ("GET", "POST", "PUT"):
            assert resp.status_code == 401, where
        else:  # DELETE, PATCH: a write checks its token, the rest is refused whoever asks
            assert resp.status_code in (401, 405), where


@pytest.mark.parametrize("page", [
    f"/valueset?url={CPT_ALL}&count=500", "/concept?system=" + CPT_URL + "&code={code}",
    "/?q=therapy", "/search/results?q=therapy", "/editor", "/codesystem?url=" + CPT_URL])
def test_a_browser_page_without_a_token_asks_for_one(guarded: Server, release: Release, page: str) -> None:
    url = root(guarded) + page.format(code=release.code)
    resp = requests.get(url, timeout=60)
    assert resp.status_code == 401
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "access token" in resp.text and not shows_text(resp.text, release.texts)
    assert requests.get(url, headers=auth(TOKEN), timeout=60).status_code == 200


def test_the_browser_takes_static_tokens_and_jwts_with_a_read_scope(guarded: Server, release: Release) -> None:
    url = f"{root(guarded)}/valueset?url={CPT_ALL}&count=500"
    shown = requests.get(url, headers=auth(TOKEN), timeout=60)
    assert shown.status_code == 200 and shows_text(shown.text, release.texts)
    reader = requests.get(url, headers=auth(make_jwt(KEY, "user/*.rs")), timeout=60)
    assert reader.status_code == 200 and shows_text(reader.text, release.texts)
    writer_only = requests.get(url, headers=auth(make_jwt(KEY, "system/ValueSet.cud")), timeout=60)
    assert writer_only.status_code == 403 and not shows_text(writer_only.text, release.texts)


def test_a_stored_answer_is_replayed_only_to_a_token(guarded: Server, release: Release) -> None:
    url = f"{guarded.base}/CodeSystem/$lookup?system={CPT_URL}&code={release.code}"
    for _ in range(2):  # the second is a response-cache hit
        assert requests.get(url, headers=auth(TOKEN), timeout=60).status_code == 200
    refused = requests.get(url, timeout=60)
    assert refused.status_code == 401 and not shows_text(refused.content, release.texts)


# -- TX_CPT_TEXT_REQUIRES_TOKEN ---------------------------------------------------------------


def lookup(server: Server, code: str, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.get(f"{server.base}/CodeSystem/$lookup", params={"system": CPT_URL, "code": code},
                        headers=headers, timeout=60)


def param(answer: dict[str, Any], name: str) -> Any:
    for p in answer.get("parameter", []):
        if p["name"] == name:
            return next((v for k, v in p.items() if k.startswith("value")), None)
    return None


READERS = {"static token": TOKEN, "JWT with a read scope": make_jwt(KEY, "user/*.rs")}


def test_without_a_token_a_lookup_has_the_code_but_no_descriptor(text_guarded: Server, release: Release) -> None:
    resp = lookup(text_guarded, release.code)
    assert resp.status_code == 200
    assert param(resp.json(), "code") == release.code or release.code in resp.text
    assert param(resp.json(), "display") is None
    assert not shows_text(resp.content, release.texts)
    no_read = lookup(text_guarded, release.code, auth(make_jwt(KEY, "system/ValueSet.cud")))
    assert no_read.status_code == 200 and not shows_text(no_read.content, release.texts)
    assert lookup(text_guarded, release.code, auth("not-a-token")).status_code == 401


@pytest.mark.parametrize("reader", list(READERS))
def test_with_a_read_token_everything_is_shown(text_guarded: Server, release: Release, reader: str) -> None:
    resp = lookup(text_guarded, release.code, auth(READERS[reader]))
    assert resp.status_code == 200
    assert param(resp.json(), "display") in release.texts


def test_without_a_token_an_expansion_lists_codes_without_display(text_guarded: Server, release: Release) -> None:
    resp = requests.get(f"{text_guarded.base}/ValueSet/$expand", params={"url": CPT_ALL, "count": "20"}, timeout=60)
    assert resp.status_code == 200
    contains = resp.json()["expansion"]["contains"]
    assert len(contains) == 20 and all(c.get("code") and "display" not in c for c in contains)
    assert not shows_text(resp.content, release.texts)
    with_token = requests.get(f"{text_guarded.base}/ValueSet/$expand", params={"url": CPT_ALL, "count": "20"},
                              headers=auth(TOKEN), timeout=60)
    assert all("display" in c for c in with_token.json()["expansion"]["contains"])


def test_without_a_token_validation_is_right_and_names_no_valid_display(
        text_guarded: Server, release: Release) -> None:
    resp = requests.get(f"{text_guarded.base}/CodeSystem/$validate-code", timeout=60,
                        params={"system": CPT_URL, "code": release.code, "display": "wrong"})
    answer = resp.json()
    assert param(answer, "result") is False
    assert "Wrong Display Name 'wrong'" in param(answer, "message")
    assert not shows_text(resp.content, release.texts)
    right = requests.get(f"{text_guarded.base}/CodeSystem/$validate-code", timeout=60,
                         params={"system": CPT_URL, "code": release.code})
    assert param(right.json(), "result") is True


def test_the_browser_shows_a_notice_instead_of_descriptors(text_guarded: Server, release: Release) -> None:
    page = f"{root(text_guarded)}/concept?system={CPT_URL}&code={release.code}"
    bare = requests.get(page, timeout=60)
    assert bare.status_code == 200
    assert 'id="licensed-notice"' in bare.text and release.code in bare.text
    assert not shows_text(bare.text, release.texts)
    full = requests.get(page, headers=auth(TOKEN), timeout=60)
    assert 'id="licensed-notice"' not in full.text and shows_text(full.text, release.texts)
