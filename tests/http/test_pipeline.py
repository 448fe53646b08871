"""The pipeline (terminology/http/pipeline.py) is the one list of request stages: every stage
it declares runs on every path it does not exempt (the thin dispatch, a response-cache hit,
the Flask routes), and nothing is wired around the app outside it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from werkzeug.test import EnvironBuilder

from terminology.content import load_registry
from terminology.http import pipeline
from terminology.http.app import create_app
from terminology.http.exchange import CACHE_HIT, DISPATCH, FLASK, Exchange, Site
from terminology.http.pipeline import AROUND, HANDLER, PATHS, STAGES, Stage
from terminology.registry import Registry
from terminology.settings import BUNDLED_CONTENT, Settings
from tests.conftest import CPT_URL, DATA

TOKEN = "pipeline-test-token"
LOOKUP = "/fhir/CodeSystem/$lookup"
QUERY = urlencode([("system", CPT_URL), ("code", "72126")])
Seen = list[tuple[str, str]]  # (stage name, path), in the order they ran


@pytest.fixture(scope="module")
def content() -> Registry:
    return load_registry([BUNDLED_CONTENT, DATA])


def instrumented(stage: Stage, seen: Seen) -> Stage:
    """`stage` with its function recording each run (the around layers: each request entering them)."""
    run = stage.run
    if run is None:
        return stage
    if stage.phase == AROUND:
        def wrap(app: Any, site: Site) -> Any:
            inner = run(app, site)

            def layer(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
                seen.append((stage.name, "around"))
                return inner(environ, start_response)

            return layer

        return dataclasses.replace(stage, run=wrap)

    def counted(x: Exchange, *rest: Any) -> Any:
        seen.append((stage.name, x.stages.path))
        return run(x, *rest)

    return dataclasses.replace(stage, run=counted)


def app_with_seen_stages(monkeypatch: pytest.MonkeyPatch, settings: Settings,
                         registry: Registry) -> tuple[Flask, Seen]:
    seen: Seen = []
    monkeypatch.setattr(pipeline, "STAGES", tuple(instrumented(s, seen) for s in STAGES))
    return create_app(settings, registry), seen


def send(app: Flask, query: str, headers: dict[str, str] | None = None) -> tuple[str, bytes]:
    environ = EnvironBuilder(path=LOOKUP, query_string=query, headers=list((headers or {}).items())).get_environ()
    sent: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        sent.append(status)

    wsgi: Any = app.wsgi_app
    body = b"".join(wsgi(environ, start_response))
    return sent[0], body


def assert_every_stage_ran(site: Site, seen: Seen, path: str) -> None:
    """Each declared stage this server runs ran on `path` unless the list exempts it there."""
    for stage in STAGES:
        if stage.phase == HANDLER or not stage.when(site):
            continue
        ran = (stage.name, "around" if stage.phase == AROUND else path) in seen
        if path in stage.skips:
            assert not ran, f"{stage.name} ran on {path}, which the list says it skips"
        else:
            assert ran, f"{stage.name} did not run on the {path} path"


def test_every_stage_runs_on_the_dispatch_a_cache_hit_and_flask(
        monkeypatch: pytest.MonkeyPatch, content: Registry, tmp_path: Path) -> None:
    settings = Settings(content_dirs=[BUNDLED_CONTENT, DATA], data_dir=tmp_path, write_tokens=TOKEN,
                        gzip=True, fast_dispatch=True, response_cache_bytes=1 << 20)
    app, seen = app_with_seen_stages(monkeypatch, settings, content)
    site: Site = app.extensions["tx_site"]
    assert all(s.when(site) for s in STAGES if s.name not in ("read guard", "licensed reader"))  # every other stage is on

    status, first = send(app, QUERY)  # answered by the thin dispatch
    assert status == "200 OK"
    assert {p for _, p in seen} == {"around", DISPATCH}
    assert_every_stage_ran(site, seen, DISPATCH)

    seen.clear()
    status, again = send(app, QUERY)  # the same request again: a response-cache hit
    assert (status, again) == ("200 OK", first)
    assert {p for _, p in seen} == {"around", CACHE_HIT}
    assert_every_stage_ran(site, seen, CACHE_HIT)

    seen.clear()
    status, xml = send(app, QUERY, {"Accept": "application/fhir+xml"})  # XML: Flask writes it
    assert status == "200 OK" and b"<Parameters" in xml
    assert FLASK in {p for _, p in seen}
    assert_every_stage_ran(site, seen, FLASK)


def test_the_read_guard_runs_in_front_of_the_dispatch_and_the_cache(
        monkeypatch: pytest.MonkeyPatch, content: Registry, tmp_path: Path) -> None:
    settings = Settings(content_dirs=[BUNDLED_CONTENT, DATA], data_dir=tmp_path, write_tokens=TOKEN,
                        read_requires_token=True)
    app, seen = app_with_seen_stages(monkeypatch, settings, content)
    site: Site = app.extensions["tx_site"]
    assert all(s.when(site) for s in STAGES if s.name in ("thin dispatch", "response cache"))
    status, _ = send(app, QUERY)
    assert status == "401 UNAUTHORIZED"
    seen.clear()
    status, first = send(app, QUERY, {"Authorization": f"Bearer {TOKEN}"})
    assert status == "200 OK"
    assert ("read guard", DISPATCH) in seen
    assert_every_stage_ran(site, seen, DISPATCH)
    seen.clear()
    status, again = send(app, QUERY, {"Authorization": f"Bearer {TOKEN}"})  # a cache hit
    assert (status, again) == ("200 OK", first)
    assert ("read guard", CACHE_HIT) in seen
    status, _ = send(app, QUERY)  # the stored answer is not replayed without a token
    assert status == "401 UNAUTHORIZED"


def test_while_cpt_text_needs_a_token_the_cache_is_off_and_the_reader_is_checked(
        monkeypatch: pytest.MonkeyPatch, content: Registry, tmp_path: Path) -> None:
    settings = Settings(content_dirs=[BUNDLED_CONTENT, DATA], data_dir=tmp_path, write_tokens=TOKEN,
                        cpt_text_requires_token=True)
    app, seen = app_with_seen_stages(monkeypatch, settings, content)
    site: Site = app.extensions["tx_site"]
    assert not any(s.when(site) for s in STAGES if s.name in ("response cache", "mark cacheable"))
    status, _ = send(app, QUERY)
    assert status == "200 OK"
    assert ("licensed reader", DISPATCH) in seen and ("licensed text", DISPATCH) in seen
    assert_every_stage_ran(site, seen, DISPATCH)


def test_the_list_names_each_stage_once_and_each_skip_has_a_reason() -> None:
    names = [s.name for s in STAGES]
    assert len(names) == len(set(names))
    phases = [s.phase for s in STAGES]
    order = [pipeline.AROUND, pipeline.REQUEST, pipeline.HANDLER, pipeline.RESOURCE,
             pipeline.RESPONSE, pipeline.TEARDOWN]
    assert phases == sorted(phases, key=order.index), "stages are listed in the order they run"
    for stage in STAGES:
        for path, reason in stage.skips.items():
            assert path in PATHS and reason.strip(), stage.name


def test_nothing_is_wired_around_the_app_outside_the_list(content: Registry) -> None:
    app = create_app(Settings(content_dirs=[BUNDLED_CONTENT, DATA], gzip=True), content)
    hooks: list[dict[Any, list[Any]]] = [app.before_request_funcs, app.after_request_funcs,
                                         app.teardown_request_funcs]
    assert [len(funcs.get(None, [])) for funcs in hooks] == [1, 1, 1]  # the pipeline's
    assert not any(key is not None for funcs in hooks for key in funcs)  # no blueprint's own
    layer: Any = app.wsgi_app
    layers = []
    while hasattr(layer, "app"):
        layers.append(type(layer).__name__)
        layer = layer.app
    assert layers == ["Gzip", "ConditionalGet", "CachedOperations", "OperationDispatch"]
