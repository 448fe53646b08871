"""Read and search of the loaded CodeSystem, ValueSet and ConceptMap resources (R4 search.html).

Search answers a searchset Bundle paged by `_count` and `_offset` with self/first/previous/
next/last links; `_summary` (true, text, data, count, false) and `_elements` subset the
resources (marked SUBSETTED, as R4 asks) on read and search alike; `_total=none` leaves the
total out. An unknown search parameter is ignored and reported in an OperationOutcome entry
(search mode `outcome`), or is a 400 when the client sent `Prefer: handling=strict`.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlencode

from terminology.errors import BadRequest, Gone, Issue, NotFound, operation_outcome
from terminology.params import ParamBag
from terminology.registry import Registry

SEARCH_PARAMS = ("url", "version", "name", "title", "status")
# Result parameters (R4 search.html#return), plus _format which the HTTP edge reads.
RESULT_PARAMS = ("_count", "_offset", "_summary", "_elements", "_total", "_format", "_pretty")
SUMMARY_VALUES = ("true", "text", "data", "count", "false")
TOTAL_VALUES = ("none", "estimate", "accurate")
SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
ALWAYS = ("resourceType", "id", "meta")


@functools.cache
def _marked(resource_type: str, flag: str) -> frozenset[str]:
    """The top-level elements of a resource type the FHIR definition marks with `flag`
    (summary_element_property: in the summary; element_required: mandatory)."""
    from fhir.resources.R4B import get_fhir_model_class

    fields = get_fhir_model_class(resource_type).model_fields
    return frozenset(name for name, f in fields.items()
                     if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get(flag))


def _mark_subsetted(resource: dict[str, Any]) -> dict[str, Any]:
    meta = dict(resource.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), SUBSETTED]
    resource["meta"] = meta
    return resource


def subset(resource: dict[str, Any], summary: str | None, elements: list[str] | None) -> dict[str, Any]:
    """The resource as `_summary` / `_elements` ask (unchanged when neither does)."""
    rtype = str(resource.get("resourceType", ""))
    if summary in ("true", "text", "data"):
        if summary == "true":
            keep = _marked(rtype, "summary_element_property")
        elif summary == "text":
            keep = _marked(rtype, "element_required") | {"text"}
        else:
            keep = frozenset(k for k in resource if k not in ("text", "_text"))
        kept = {k: v for k, v in resource.items() if k in ALWAYS or k.lstrip("_") in keep}
        return _mark_subsetted(kept)
    if elements:
        keep = _marked(rtype, "element_required") | set(elements)
        return _mark_subsetted({k: v for k, v in resource.items() if k in ALWAYS or k.lstrip("_") in keep})
    return resource


def _subset_params(bag: ParamBag) -> tuple[str | None, list[str] | None]:
    summary = bag.text("_summary")
    if summary is not None and summary not in SUMMARY_VALUES:
        raise BadRequest(f"_summary '{summary}' is not supported ({', '.join(SUMMARY_VALUES)})",
                         expression="_summary")
    raw = bag.text("_elements")
    if summary is not None and summary != "false" and raw:
        raise BadRequest("_summary and _elements cannot be used together", expression="_elements")
    elements = [e.strip() for e in raw.split(",") if e.strip()] if raw else None
    return (None if summary == "false" else summary), elements


def read(registry: Registry, resource_type: str, rid: str, bag: ParamBag | None = None) -> dict[str, Any]:
    """The loaded resource of that type and id (as _summary/_elements ask), or 404."""
    found = registry.by_id(resource_type, rid)
    if found is None and registry.deleted(resource_type, rid):
        raise Gone(f"{resource_type}/{rid} was deleted", expression="id")
    if found is None:
        raise NotFound(f"{resource_type}/{rid} is not known to this server", expression="id",
                       message_id="MSG_NO_MATCH")
    if resource_type == "CodeSystem":
        provider = registry.code_system(found.get("url", ""), found.get("version"))
        full = getattr(provider, "full_resource", None)
        if callable(full):
            found = full()
    if bag is None:
        return found
    summary, elements = _subset_params(bag)
    if summary == "count":
        raise BadRequest("_summary=count applies to searches, not reads", expression="_summary")
    return subset(found, summary, elements)


def _matches(resource: dict[str, Any], name: str, wanted: str) -> bool:
    have = resource.get(name)
    if have is None:
        return False
    if name in ("name", "title"):  # string search: case-insensitive prefix
        return str(have).lower().startswith(wanted.lower())
    return str(have) == wanted


def _criteria(bag: ParamBag, strict: bool) -> tuple[list[tuple[str, str]], list[str]]:
    """The search criteria, and the unknown parameters ignored (400 when strict)."""
    criteria: list[tuple[str, str]] = []
    unknown: list[str] = []
    for p in bag.params:
        if p.name in SEARCH_PARAMS:
            criteria.append((p.name, str(p.value)))
        elif p.name not in RESULT_PARAMS:
            if strict:
                raise BadRequest(f"The search parameter '{p.name}' is not supported "
                                 f"(supported: {', '.join(SEARCH_PARAMS)})", expression=p.name)
            unknown.append(p.name)
    return criteria, unknown


def _links(url: str, query: list[tuple[str, str]], offset: int, count: int | None,
           total: int) -> list[dict[str, str]]:
    """self, and with paging first/previous/next/last (R4 http.html#paging)."""
    def page(at: int) -> str:
        extra = [] if count is None else [("_count", str(count))]
        if at:
            extra.append(("_offset", str(at)))
        params = query + extra
        return url + (f"?{urlencode(params)}" if params else "")

    links = [{"relation": "self", "url": page(offset)}]
    if count is None or count == 0:
        return links
    last = max(0, (total - 1) // count * count)
    links.append({"relation": "first", "url": page(0)})
    if offset > 0:
        links.append({"relation": "previous", "url": page(max(0, offset - count))})
    if offset + count < total:
        links.append({"relation": "next", "url": page(offset + count)})
    links.append({"relation": "last", "url": page(last)})
    return links


def search(registry: Registry, resource_type: str, bag: ParamBag, base_url: str,
           strict: bool = False) -> dict[str, Any]:
    """A searchset Bundle of the loaded resources matching url/version/name/title/status."""
    criteria, unknown = _criteria(bag, strict)
    count = bag.integer("_count")
    offset = bag.integer("_offset") or 0
    summary, elements = _subset_params(bag)
    total_mode = bag.text("_total")
    if total_mode is not None and total_mode not in TOTAL_VALUES:
        raise BadRequest(f"_total '{total_mode}' is not supported ({', '.join(TOTAL_VALUES)})",
                         expression="_total")
    found = [r for r in registry.resources(resource_type) if all(_matches(r, n, v) for n, v in criteria)]
    kept = list(criteria)
    if summary:
        kept.append(("_summary", summary))
    if elements:
        kept.append(("_elements", ",".join(elements)))
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if total_mode != "none":
        bundle["total"] = len(found)
    bundle["link"] = _links(f"{base_url}/{resource_type}", kept, offset, None if summary == "count" else count,
                            len(found))
    if summary == "count":
        return bundle
    shown = found[offset:] if count is None else found[offset:offset + count]
    entries: list[dict[str, Any]] = [
        {"fullUrl": f"{base_url}/{resource_type}/{r.get('id')}",
         "resource": subset(r, summary, elements), "search": {"mode": "match"}}
        for r in shown
    ]
    if unknown:
        issues = [Issue("warning", "not-supported",
                        f"The search parameter '{name}' is not supported and was ignored",
                        expression=[name]) for name in unknown]
        entries.append({"resource": operation_outcome(issues), "search": {"mode": "outcome"}})
    bundle["entry"] = entries
    return bundle
