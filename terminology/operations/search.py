"""Read and search of the loaded CodeSystem, ValueSet and ConceptMap resources."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from terminology.errors import BadRequest, NotFound
from terminology.params import ParamBag
from terminology.registry import Registry

SEARCH_PARAMS = ("url", "version", "name", "title", "status")
SUMMARY_ELEMENTS = ("resourceType", "id", "meta", "url", "version", "name", "title", "status",
                    "date", "publisher", "experimental", "content", "count", "caseSensitive")


def read(registry: Registry, resource_type: str, rid: str) -> dict[str, Any]:
    """The loaded resource of that type and id, or 404."""
    found = registry.by_id(resource_type, rid)
    if found is None:
        raise NotFound(f"{resource_type}/{rid} is not known to this server", expression="id",
                       message_id="MSG_NO_MATCH")
    if resource_type == "CodeSystem":
        provider = registry.code_system(found.get("url", ""), found.get("version"))
        full = getattr(provider, "full_resource", None)
        if callable(full):
            return full()
    return found


def _matches(resource: dict[str, Any], name: str, wanted: str) -> bool:
    have = resource.get(name)
    if have is None:
        return False
    if name in ("name", "title"):  # string search: case-insensitive prefix
        return str(have).lower().startswith(wanted.lower())
    return str(have) == wanted


def _summary(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k in SUMMARY_ELEMENTS}


def search(registry: Registry, resource_type: str, bag: ParamBag, base_url: str) -> dict[str, Any]:
    """A searchset Bundle of the loaded resources matching url/version/name/title/status."""
    criteria: list[tuple[str, str]] = []
    for p in bag.params:
        if p.name in SEARCH_PARAMS:
            criteria.append((p.name, str(p.value)))
        elif p.name not in ("_summary", "_count", "_elements"):
            raise BadRequest(f"The search parameter '{p.name}' is not supported", expression=p.name)
    count = bag.integer("_count")
    summary = bag.text("_summary")
    if summary not in (None, "true", "false", "count"):
        raise BadRequest(f"_summary '{summary}' is not supported (true, false, count)", expression="_summary")
    found = [r for r in registry.resources(resource_type)
             if all(_matches(r, n, v) for n, v in criteria)]
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(found),
        "link": [{"relation": "self",
                  "url": f"{base_url}/{resource_type}" + (f"?{urlencode(criteria)}" if criteria else "")}],
    }
    if summary == "count":
        return bundle
    shown = found if count is None else found[:count]
    bundle["entry"] = [
        {"fullUrl": f"{base_url}/{resource_type}/{r.get('id')}",
         "resource": _summary(r) if summary == "true" else r,
         "search": {"mode": "match"}}
        for r in shown
    ]
    return bundle
