"""The thin dispatch (terminology/http/fhir/dispatch.py) answers operation GETs exactly as Flask does:
same status line, same headers, same body bytes, on every shipped value set and every CPT
code, errors included; what it does not answer itself goes to Flask."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from werkzeug.test import EnvironBuilder

from terminology.content import load_registry
from terminology.http.app import create_app
from terminology.http.fhir.dispatch import OperationDispatch
from terminology.registry import Registry
from terminology.settings import BUNDLED_CONTENT, Settings
from tests.conftest import CPT_URL, DATA

# per-call values: a new expansion identifier and the time of the answer
VOLATILE = re.compile(rb'"urn:uuid:[0-9a-f-]+"|"timestamp":"[^"]+"')


def dispatch_of(registry: Registry, settings: Settings) -> OperationDispatch:
    app = create_app(settings, registry)
    layer: Any = app.wsgi_app  # the dispatch, inside the conditional-GET (and gzip) middleware
    while not isinstance(layer, OperationDispatch):
        layer = layer.app  # the response cache is off, so the dispatch is the next layer down
    return layer


@pytest.fixture(scope="module")
def bundled() -> tuple[Registry, OperationDispatch]:
    registry = load_registry([BUNDLED_CONTENT, DATA])
    return registry, dispatch_of(registry, Settings(content_dirs=[BUNDLED_CONTENT, DATA],
                                                    response_cache_bytes=0))


def call(app: Any, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    sent: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        sent[:] = [status, list(headers)]

    body = b"".join(app(dict(environ), start_response))
    headers = sent[1]
    if VOLATILE.search(body):  # the strong ETag hashes those per-call bytes: compare the rest
        headers = [(k, "volatile" if k == "ETag" else v) for k, v in headers]
    return sent[0], headers, VOLATILE.sub(b'"volatile"', body)


def environ(path: str, query: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    sent: dict[str, str] = {"X-Request-Id": "same-id", **(headers or {})}
    return EnvironBuilder(path=path, query_string=query, headers=list(sent.items())).get_environ()


def assert_same(dispatch: OperationDispatch, path: str, params: list[tuple[str, str]] | str,
                headers: dict[str, str] | None = None, *, answered: bool = True) -> bytes:
    """The dispatch's answer equals Flask's, and the dispatch answered it itself (or not)."""
    query = params if isinstance(params, str) else urlencode(params)
    env = environ(path, query, headers)
    assert (dispatch.answer(dict(env)) is not None) == answered, (path, query)
    fast, flask = call(dispatch, env), call(dispatch.app, env)
    assert fast == flask, (path, query)
    return fast[2]


def codes_of(body: bytes) -> Iterator[str]:
    return (m.decode() for m in re.findall(rb'"code":"([^"]+)"', body))


def test_every_shipped_value_set_expands_and_validates_the_same(bundled: tuple[Registry, OperationDispatch]) -> None:
    registry, dispatch = bundled
    value_sets = registry.resources("ValueSet")
    assert len(value_sets) > 5
    for vs in value_sets:
        url = vs["url"]
        body = assert_same(dispatch, "/fhir/ValueSet/$expand", [("url", url)])
        assert_same(dispatch, "/fhir/ValueSet/$expand", [("url", url), ("count", "3"), ("offset", "1")])
        assert_same(dispatch, "/fhir/ValueSet/$expand", [("url", url), ("filter", "ct spi")])
        assert_same(dispatch, "/fhir/ValueSet/$expand", [("url", url), ("includeDesignations", "true")],
                    {"Accept-Language": "de"})
        systems = {s.get("system") for s in (vs.get("compose") or {}).get("include", []) if s.get("system")}
        for system in systems:
            for code in list(codes_of(body))[:40] + ["not-a-code"]:
                assert_same(dispatch, "/fhir/ValueSet/$validate-code",
                            [("url", url), ("system", system), ("code", code)])


def test_every_cpt_code_of_the_fragment_looks_up_and_validates_the_same(
        bundled: tuple[Registry, OperationDispatch]) -> None:
    registry, dispatch = bundled
    cpt = registry.code_system(CPT_URL)
    assert cpt is not None and cpt.total() > 20
    for concept in cpt.iterate():
        code = concept.code
        assert_same(dispatch, "/fhir/CodeSystem/$lookup", [("system", CPT_URL), ("code", code)])
        assert_same(dispatch, "/fhir/CodeSystem/$validate-code",
                    [("url", CPT_URL), ("code", code), ("display", concept.display or "")])
        assert_same(dispatch, "/fhir/CodeSystem/$validate-code",
                    [("url", CPT_URL), ("code", code), ("display", "wrong display")])
    for code in ("72126:26", "72126:99", "72126-26", "00000"):
        assert_same(dispatch, "/fhir/CodeSystem/$lookup", [("system", CPT_URL), ("code", code)])


def test_codes_of_the_full_size_release_look_up_and_validate_the_same(full_registry: Registry, full_cpt_db: Any) -> None:
    dispatch = dispatch_of(full_registry, Settings(cpt_databases=[full_cpt_db], response_cache_bytes=0))
    cpt = full_registry.code_system(CPT_URL)
    assert cpt is not None and cpt.total() > 11_000
    for i, concept in enumerate(cpt.iterate()):
        if i % 5:
            continue  # every fifth code of the 11,071: the answers are built the same way
        assert_same(dispatch, "/fhir/CodeSystem/$lookup", [("system", CPT_URL), ("code", concept.code)])
        assert_same(dispatch, "/fhir/ValueSet/$validate-code", [
            ("url", "http://terminology.hl7.org/ValueSet/cpt-base"), ("system", CPT_URL),
            ("code", concept.code), ("display", concept.display or "")])


@pytest.mark.parametrize(("path", "query", "headers"), [
    ("/fhir/CodeSystem/$lookup", "system=http://unknown.test&code=1", None),  # 404
    ("/fhir/CodeSystem/$lookup", "code=72126", None),  # 400: no system
    ("/fhir/CodeSystem/$lookup", f"system={CPT_URL}&code=72126&_format=json", None),
    ("/fhir/CodeSystem/$lookup", f"system={CPT_URL}&code=%0072126", None),  # control character
    ("/fhir/CodeSystem/$lookup", f"code=72126&system={CPT_URL}&code=72127", None),  # repeated name
    ("/fhir/ValueSet/$expand", "url=http://unknown.test/vs", None),
    ("/fhir/ValueSet/$expand", "url=http://terminology.hl7.org/ValueSet/cpt-all", None),  # too costly
    ("/fhir/ValueSet/$expand", "url=http://terminology.hl7.org/ValueSet/cpt-all&count=x", None),
    ("/fhir/ValueSet/$validate-code", "code=72126", None),
    ("/fhir/ValueSet/$expand", "url=https://terminology.cpt-imaging.org/fhir/ValueSet/all-radiology",
     {"X-Too-Costly-Threshold": "5"}),  # the client's lower limit
    ("/fhir/ValueSet/$expand", "url=https://terminology.cpt-imaging.org/fhir/ValueSet/spine-ct",
     {"Accept-Language": "de, *; q=0", "Accept": "application/fhir+json;q=0.9, text/html"}),
    ("/fhir/CodeSystem/$subsumes", f"system={CPT_URL}&codeA=72126&codeB=72126", None),
    ("/fhir/ConceptMap/$translate", f"system={CPT_URL}&code=72126", None),
])
def test_errors_and_edge_cases_answer_the_same(bundled: tuple[Registry, OperationDispatch], path: str,
                                               query: str, headers: dict[str, str] | None) -> None:
    assert_same(bundled[1], path, query, headers)


@pytest.mark.parametrize(("path", "query"), [
    ("/fhir/CodeSystem/$lookup", f"system={CPT_URL}&code=%FF"),  # not UTF-8: Flask's 400
    ("/fhir/CodeSystem/$lookup", f"system={CPT_URL}&code=72126&tx-resource=x"),
    ("/fhir/CodeSystem/$nope", f"system={CPT_URL}"),
    ("/fhir/Patient/$lookup", f"system={CPT_URL}"),
    ("/fhir/CodeSystem/cpt/$lookup", "code=72126"),  # instance level
    ("/fhir/CodeSystem/$lookup", f"system={CPT_URL}&code=72126&_format=xml"),  # XML: Flask writes it
    ("/fhir/CodeSystem/$lookup", f"system={CPT_URL}&code=72126&_format=text/html"),  # 406
    ("/fhir/CodeSystem/$lookup", f"system={CPT_URL}&code=72126&cache-id=c1"),
])
def test_what_it_does_not_answer_goes_to_flask(bundled: tuple[Registry, OperationDispatch], path: str,
                                               query: str) -> None:
    assert_same(bundled[1], path, query, answered=False)


@pytest.mark.parametrize("accept", ["application/xml", "application/fhir+xml", "text/html"])
def test_xml_and_unacceptable_accept_headers_go_to_flask(bundled: tuple[Registry, OperationDispatch],
                                                         accept: str) -> None:
    assert_same(bundled[1], "/fhir/CodeSystem/$lookup", f"system={CPT_URL}&code=72126",
                {"Accept": accept}, answered=False)
