"""What the order-set editor page needs from the server: the code systems an author can pick
from, the rules (facet filters) each one offers with their values, how to search it, and the
draft to start from.

The editor itself runs in the browser (static/editor.js) on the FHIR API: `$expand` with
`filter` to search, `$expand` of the draft sent inline to preview, `$batch-validate-code` to
check listed codes and displays, and the REST writes to save. This module only describes the
choices; it holds no terminology logic.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

from terminology.http.web.search import expand_call
from terminology.providers.base import CodeSystemProvider
from terminology.registry import Registry

# Facet values are read from every concept once per loaded provider (10,000s of concepts: a
# few ms); past this many distinct values a property is not offered as checkboxes.
MAX_FACET_VALUES = 60
# Labels for the imaging modality codes the CPT facets use (DICOM modality abbreviations).
MODALITY_LABELS = {
    "CT": "CT", "MR": "MRI", "US": "Ultrasound", "XR": "X-ray", "FL": "Fluoroscopy",
    "IR": "Interventional (catheter)", "NM": "Nuclear medicine", "PET": "PET",
    "MG": "Mammography", "DXA": "Bone density (DXA)",
}
CONTRAST_LABELS = {"none": "without contrast", "with": "with contrast",
                   "without-then-with": "without, then with contrast"}
PROPERTY_LABELS = {"modality": "Modality", "body-region": "Body region", "contrast": "Contrast",
                   "kind": "Kind of code"}
# Facets first, in the order an author thinks of an imaging order; other properties after.
PROPERTY_ORDER = ("modality", "body-region", "contrast", "kind")


@dataclass
class Facet:
    """One property an author can build a rule from, and its values (code, label)."""

    property: str
    label: str
    values: list[tuple[str, str]]


@dataclass
class EditorSystem:
    """A code system as the editor offers it: how to search it and which rules it takes."""

    url: str
    version: str | None
    label: str
    search: dict[str, Any]  # {"method", "url", "body"}: the $expand request, without filter
    facets: list[Facet] = field(default_factory=list)
    code_ranges: bool = False  # whether 'code in 72125-72133,70450' is understood
    copyright: str | None = None


def _value_label(prop: str, value: str) -> str:
    if prop == "modality":
        return MODALITY_LABELS.get(value, value)
    if prop == "contrast":
        return CONTRAST_LABELS.get(value, value)
    return value if prop == "kind" else value.replace("-", " ")


_FACET_CACHE: dict[tuple[int, str, str | None], list[Facet]] = {}


def facets(provider: CodeSystemProvider) -> list[Facet]:
    """The code-valued properties `provider` can filter on with '=' / 'in', with the values
    its concepts carry (computed once per loaded provider)."""
    key = (id(provider), provider.url, provider.version)
    if key in _FACET_CACHE:
        return _FACET_CACHE[key]
    filterable = {f.get("code") for f in provider.resource.get("filter", [])
                  if {"=", "in"} & set(f.get("operator", []))}
    coded = [d["code"] for d in provider.property_definitions()
             if d.get("type") == "code" and d.get("code") in filterable]
    values: dict[str, set[str]] = {p: set() for p in coded}
    if coded:
        for concept in provider.iterate():
            for prop in concept.properties:
                if prop.code in values:
                    values[prop.code].add(str(prop.value))
    order = {p: i for i, p in enumerate(PROPERTY_ORDER)}
    found = [Facet(p, PROPERTY_LABELS.get(p, p), [(v, _value_label(p, v)) for v in sorted(vals)])
             for p, vals in values.items() if vals and len(vals) <= MAX_FACET_VALUES]
    found.sort(key=lambda f: (order.get(f.property, len(order)), f.property))
    if len(_FACET_CACHE) >= 256:  # authored code systems come and go: do not grow forever
        _FACET_CACHE.clear()
    _FACET_CACHE[key] = found
    return found


def search_request(registry: Registry, provider: CodeSystemProvider) -> dict[str, Any]:
    """The search page's $expand request for `provider`, minus the filter (editor.js adds
    the author's words as `filter`)."""
    call = expand_call(registry, provider, "")
    if call.body is None:
        call.query = [(k, v) for k, v in call.query if k != "filter"]
        return {"method": "GET", "url": call.url, "body": None}
    body = dict(call.body)
    body["parameter"] = [p for p in body["parameter"] if p.get("name") != "filter"]
    return {"method": "POST", "url": call.path, "body": body}


def editor_systems(registry: Registry) -> list[EditorSystem]:
    """Every loaded code system an order set can draw on; those with rules first."""
    out = []
    for p in registry.providers():
        if p.content == "supplement":
            continue
        codes_filter = any(f.get("code") == "code" and "in" in f.get("operator", [])
                           for f in p.resource.get("filter", []))
        name = p.title or p.name or p.url
        out.append(EditorSystem(p.url, p.version, f"{name} ({p.version})" if p.version else name,
                                search_request(registry, p), facets(p), codes_filter,
                                p.resource.get("copyright")))
    out.sort(key=lambda s: (not (s.facets or s.code_ranges), s.label.lower()))
    return out


def systems_json(systems: list[EditorSystem]) -> list[dict[str, Any]]:
    """The systems as plain JSON for editor.js."""
    return [asdict(s) for s in systems]


def url_base(configured: str, host_url: str) -> str:
    """Where new order sets' canonical urls start: the configured base, else this server's
    /fhir/ValueSet."""
    base = configured.strip() or host_url.rstrip("/") + "/fhir/ValueSet"
    return base.rstrip("/")


def is_authored(value_set: dict[str, Any]) -> bool:
    """Whether the value set came from the store (the write API gives it meta.versionId);
    bundled and file content is read-only and is edited as a copy."""
    return bool((value_set.get("meta") or {}).get("versionId"))


def draft_for_new(source: dict[str, Any] | None = None) -> dict[str, Any]:
    """The value set a new order set starts as: empty, or a copy of `source`'s definition
    and clinical use (a new title, name, url and version are for the author to give)."""
    draft: dict[str, Any] = {"resourceType": "ValueSet", "status": "draft",
                             "compose": {"include": []}}
    if source is not None:
        draft["compose"] = copy.deepcopy(source.get("compose") or {"include": []})
        if source.get("description"):
            draft["description"] = source["description"]
        title = source.get("title") or source.get("name")
        if title:
            draft["title"] = f"Copy of {title}"
    return draft
