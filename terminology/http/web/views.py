"""The browser's routes: search, concept, value set and code system pages, the order-set editor.

Views parse the query string, call operations through terminology.http.web.calls and render a
template; they hold no terminology logic. Errors on these pages are HTML pages (the FHIR
API's errors stay OperationOutcomes).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from flask import Blueprint, g, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from terminology.errors import BadRequest, FhirError, NotFound
from terminology.http.licensed import withheld
from terminology.http.web import changes as releases
from terminology.http.web import concept as concepts
from terminology.http.web import editor as editing
from terminology.http.web import search as searching
from terminology.http.web import valueset as valuesets
from terminology.http.web.calls import FhirCall, registry, run, settings, writes_enabled
from terminology.operations.lookup import resolve_code_system

log = logging.getLogger("terminology.http.web")

web = Blueprint("web", __name__, template_folder="templates", static_folder="static",
                static_url_path="/assets")


# -- helpers ---------------------------------------------------------------------------------


def _arg(name: str) -> str | None:
    """A query parameter, stripped; None when absent or blank."""
    value = (request.args.get(name) or "").strip()
    return value or None


def _required(name: str) -> str:
    value = _arg(name)
    if value is None:
        raise BadRequest(f"This page needs the query parameter '{name}'", expression=name)
    return value


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    """A whole-number query parameter within [low, high]; 400 page otherwise."""
    raw = _arg(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequest(f"'{name}' must be a whole number from {low} to {high}, not '{raw}'",
                         expression=name)
    return int(raw)


def copyrights(systems: Iterable[str]) -> list[tuple[str, str]]:
    """(title, copyright statement) of each named code system that has one: shown wherever
    that system's descriptors appear (the AMA requires it for CPT)."""
    out: list[tuple[str, str]] = []
    for url in dict.fromkeys(systems):
        provider = registry().code_system(url)
        statement = provider.resource.get("copyright") if provider else None
        notice = (provider.title or provider.name or url, str(statement)) if provider else None
        if notice and statement and notice not in out:
            out.append(notice)
    return out


def _page(template: str, calls: list[FhirCall], systems: Iterable[str] = (), **context: Any) -> str:
    x = g.get("x")
    text_withheld = x is not None and (not x.licensed or bool(x.cpt_shown) and
                                       len(x.cpt_shown) >= settings().max_cpt_expansion)
    context.setdefault("hidden", set())
    return render_template(template, calls=calls, copyrights=copyrights(systems),
                           host_url=request.host_url, text_withheld=text_withheld,
                           needs_token=settings().cpt_text_requires_token, **context)


# -- pages -----------------------------------------------------------------------------------


@web.get("/")
def index() -> str:
    """The search page; `?q=` renders results without JavaScript."""
    text, system = _arg("q"), _arg("system")
    groups = searching.search(registry(), text, system) if text else []
    providers = sorted(registry().providers(), key=lambda p: (p.title or p.name or p.url).lower())
    value_sets = sorted(registry().resources("ValueSet"), key=lambda v: str(v.get("title") or v.get("name")).lower())
    # The results block carries its own requests and notices: app.js replaces it as one.
    return _page("search.html", [], [], q=text or "", system=system or "", groups=groups,
                 providers=providers, value_sets=value_sets, **_results_context(groups))


@web.get("/search/results")
def search_results() -> str:
    """Only the results block of the search page (fetched by app.js as the user types)."""
    text, system = _arg("q"), _arg("system")
    groups = searching.search(registry(), text, system) if text else []
    return _page("_results.html", [], [], q=text or "", groups=groups, **_results_context(groups))


def _results_context(groups: list[searching.SearchGroup]) -> dict[str, Any]:
    return {"result_calls": [gr.call for gr in groups],
            "result_copyrights": copyrights(gr.provider.url for gr in groups)}


@web.get("/concept")
def concept_page() -> str:
    """One code: displays, designations, properties, facets, value sets, mappings (e.g. an
    imaging code's contrast alternatives and DICOM modality), modifiers."""
    system, code, version = _required("system"), _required("code"), _arg("version")
    call = concepts.lookup_call(system, code, version)
    view = concepts.concept_view(run(call, request.headers.get("Accept-Language")))
    provider = resolve_code_system(registry(), system, version)
    located = provider.locate(view.code)
    modifiers = concepts.modifiers(provider) if located and concepts.takes_modifiers(located) else []
    expression = _arg("expression")
    result = concepts.validate_expression(system, version, expression) if expression and modifiers else None
    members = concepts.memberships(registry(), provider.url, view.code, provider.version)
    mapped = concepts.mappings(registry(), provider.url, view.code)
    calls = [call] + ([result.call] if result else [])  # memberships and mappings link their own
    # text shown outside the operation answers counts on the same total (http/licensed.py)
    hidden = withheld(g.get("x"), [m.display or "" for m in modifiers]
                      + [t.display or "" for m in mapped for t in m.targets])
    return _page("concept.html", calls, [provider.url], view=view, provider=provider,
                 modifiers=modifiers, members=members, expression=expression, result=result,
                 mappings=mapped, hidden=hidden)


@web.get("/valueset")
def value_set_page() -> str:
    """A value set: description, compose in words, one page of its expansion, a filter."""
    url, version = _required("url"), _arg("version")
    value_set = registry().value_set(url, version)
    if value_set is None:
        raise NotFound(f"No value set '{url}'{f' version {version}' if version else ''} is loaded here")
    text = _arg("filter")
    offset = _int_arg("offset", 0, 0, 10_000_000)
    count = _int_arg("count", valuesets.PAGE_SIZE, 1, valuesets.MAX_PAGE_SIZE)
    call = valuesets.expand_call(value_set, text, offset, count)
    expansion = run(call).get("expansion", {})
    entries = valuesets.flatten(expansion.get("contains", []))
    pager = valuesets.Pager(offset, count, int(expansion.get("total", len(entries))))
    systems = [e.get("system", "") for _, e in entries]
    impact, calls = _release_impact(value_set), [call]
    if impact is not None:
        calls.append(impact[0])
    return _page("valueset.html", calls, systems, value_set=value_set,
                 authored=editing.is_authored(value_set),
                 rules=valuesets.compose_rules(registry(), value_set), entries=entries,
                 pager=pager, filter=text or "", count=count, show_system=len(set(systems)) > 1,
                 impact=impact)


def _release_impact(value_set: dict[str, Any]) -> tuple[FhirCall, str, str, str, releases.ChangeList] | None:
    """What the newest loaded release changes in the value set (ValueSet/$diff against the
    release before it), or None when no code system it draws on has two releases loaded."""
    pair = releases.newest_pair(registry(), value_set)
    if pair is None or not value_set.get("url"):
        return None
    system, before, after = pair
    call = releases.value_set_diff_call(value_set, system, before, after)
    try:
        answer = run(call)
    except FhirError:  # too costly or a code system missing: the page shows the rest
        return None
    return call, system, before, after, releases.change_list(answer)


@web.get("/changes")
def changes_page() -> str:
    """The codes added, deleted and revised between two releases of a code system, searchable
    and paged (CodeSystem/$diff)."""
    system, before, after = _required("system"), _required("from"), _required("to")
    text = _arg("filter")
    offset = _int_arg("offset", 0, 0, 10_000_000)
    call = releases.diff_call(system, before, after, text, offset, releases.PAGE_SIZE)
    changes = releases.change_list(run(call))
    pager = valuesets.Pager(offset, releases.PAGE_SIZE, changes.total)
    return _page("changes.html", [call], [system], system=system, before=before, after=after,
                 changes=changes, pager=pager, filter=text or "",
                 pairs=releases.release_pairs(registry(), system))


@web.get("/codesystem")
def code_system_page() -> str:
    """A code system: metadata, copyright, counts, properties and filters."""
    url, version = _required("url"), _arg("version")
    provider = resolve_code_system(registry(), url, version, expression="url")
    rid = provider.resource.get("id")
    call = FhirCall(f"/fhir/CodeSystem/{rid}") if rid else FhirCall("/fhir/CodeSystem", [("url", url)])
    value_sets = [v for v in registry().resources("ValueSet")
                  if any(i.get("system") == provider.url
                         for i in (v.get("compose") or {}).get("include", []))]
    return _page("codesystem.html", [call], [provider.url], provider=provider,
                 versions=registry().code_system_versions(provider.url), value_sets=value_sets,
                 pairs=releases.release_pairs(registry(), provider.url))


@web.get("/editor")
def editor_new() -> str:
    """The order-set editor for a new value set; `?from={id}` starts from a copy of one."""
    source = _arg("from")
    copied = registry().by_id("ValueSet", source) if source else None
    if source and copied is None:
        raise NotFound(f"No value set with id '{source}' is loaded here", expression="from")
    return _editor(editing.draft_for_new(copied), None, copied_from=copied)


@web.get("/editor/<rid>")
def editor_edit(rid: str) -> str | Response:
    """The order-set editor over the loaded value set with id `rid`."""
    value_set = registry().by_id("ValueSet", rid)
    if value_set is None:
        raise NotFound(f"No value set with id '{rid}' is loaded here", expression="id")
    if not editing.is_authored(value_set):  # bundled content is read-only: edit a copy
        copy: dict[str, Any] = {"from": rid}  # 'from' is a Python keyword
        return redirect(url_for("web.editor_new", **copy), 303)
    return _editor(value_set, rid)


@web.get("/editor/<rid>/_history/<vid>")
def editor_version(rid: str, vid: str) -> str:
    """One saved version of an order set, read-only, with its expansion (editor.js reads the
    version through the FHIR API: GET /fhir/ValueSet/{rid}/_history/{vid})."""
    return _editor({"resourceType": "ValueSet"}, rid, vid)


def _editor(draft: dict[str, Any], rid: str | None, version_id: str | None = None,
            copied_from: dict[str, Any] | None = None) -> str:
    systems = editing.editor_systems(registry())
    config = {"id": rid, "versionId": version_id, "draft": draft,
              "systems": editing.systems_json(systems),
              "urlBase": editing.url_base(settings().editor_url_base, request.host_url),
              "writes": writes_enabled(),
              "releases": releases.newest_pairs_json(registry(), [s.url for s in systems])}
    return _page("editor.html", [], [s.url for s in systems], config=config, draft=draft,
                 rid=rid, version_id=version_id, copied_from=copied_from)


# -- errors: HTML on these pages -------------------------------------------------------------


@web.errorhandler(Exception)
def error_page(exc: Exception) -> tuple[str, int]:
    """Any error on a browser page as an HTML page with the status and a plain message."""
    if isinstance(exc, FhirError):
        status, messages = exc.status, [i.text for i in exc.issues]
    elif isinstance(exc, HTTPException):
        status, messages = exc.code or 500, [exc.description or exc.name]
    else:
        log.exception("unexpected error on page %s", request.path)
        status = 500
        messages = [f"An unexpected error occurred (request id {g.get('request_id', '')})"]
    titles = {400: "Bad request", 401: "Access token needed", 403: "Not allowed", 404: "Not found",
              422: "Too costly"}
    failed = g.get("last_fhir_call")
    return render_template("error.html", status=status, title=titles.get(status, "Error"),
                           messages=messages, calls=[failed] if failed else [], copyrights=[],
                           host_url=request.host_url), status

