"""CodeSystem/$lookup: everything known about one code, as a Parameters dict."""

from __future__ import annotations

from typing import Any

from terminology.errors import NotFound
from terminology.operations.context import OperationContext
from terminology.operations.releases.history import code_history
from terminology.params import LookupRequest, lookup_request
from terminology.providers.base import CodeSystemProvider, Concept, Prop
from terminology.registry import Registry
from terminology.valuesets.languages import pick_display
from terminology.valuesets.supplements import (
    canonical,
    require_supplements,
    supplement_concepts,
    supplements_for,
)

PREFERRED_FOR_LANGUAGE = {
    "system": "http://terminology.hl7.org/CodeSystem/hl7TermMaintInfra",
    "code": "preferredForLanguage",
    "display": "Preferred For Language",
}


def resolve_code_system(registry: Registry, system: str, version: str | None,
                        expression: str = "system") -> CodeSystemProvider:
    """The provider for system|version, or a 404 that says which part is unknown."""
    provider = registry.code_system(system, version)
    if provider is not None:
        return provider
    if version is not None and registry.has_code_system(system):
        known = ", ".join(v or "(none)" for v in registry.code_system_versions(system))
        raise NotFound(
            f"A definition for CodeSystem '{system}' version '{version}' could not be found "
            f"(known versions: {known})",
            expression="version", message_id="UNKNOWN_CODESYSTEM_VERSION",
        )
    raise NotFound(
        f"A definition for CodeSystem '{system}' could not be found",
        expression=expression, message_id="UNKNOWN_CODESYSTEM",
    )


def _param(name: str, key: str, value: Any) -> dict[str, Any]:
    return {"name": name, key: value}


def _property(code: str, key: str, value: Any, description: str | None = None) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"name": "code", "valueCode": code}, {"name": "value", key: value}]
    if description:
        parts.append({"name": "description", "valueString": description})
    return {"name": "property", "part": parts}


def _wanted(requested: list[str], code: str) -> bool:
    return not requested or "*" in requested or code in requested


def _designations(provider: CodeSystemProvider, concept: Concept) -> list[dict[str, Any]]:
    out = []
    if concept.display and provider.language:
        out.append({"name": "designation", "part": [
            {"name": "language", "valueCode": provider.language},
            {"name": "use", "valueCoding": PREFERRED_FOR_LANGUAGE},
            {"name": "value", "valueString": concept.display},
        ]})
    for d in concept.designations:
        parts: list[dict[str, Any]] = []
        if d.language:
            parts.append({"name": "language", "valueCode": d.language})
        if d.use:
            parts.append({"name": "use", "valueCoding": d.use})
        parts.append({"name": "value", "valueString": d.value})
        out.append({"name": "designation", "part": parts})
    return out


def _supplement_designations(supplements: list[dict[str, Any]], system: str,
                             code: str) -> list[dict[str, Any]]:
    """Designations that the supplements in use add to the concept, each with its source."""
    out = []
    for sup in supplements:
        for c in supplement_concepts([sup]).get((system, code), []):
            for d in c.get("designation", []):
                parts: list[dict[str, Any]] = []
                if d.get("language"):
                    parts.append({"name": "language", "valueCode": d["language"]})
                if d.get("use"):
                    parts.append({"name": "use", "valueCoding": d["use"]})
                parts.append({"name": "source", "valueCanonical": canonical(sup)})
                parts.append({"name": "value", "valueString": d.get("value", "")})
                out.append({"name": "designation", "part": parts})
    return out


def _properties(provider: CodeSystemProvider, concept: Concept, requested: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if provider.hierarchical:
        for parent in concept.parents if _wanted(requested, "parent") else []:
            p = provider.locate(parent)
            out.append(_property("parent", "valueCode", parent, p.display if p else None))
        for child in concept.children if _wanted(requested, "child") else []:
            c = provider.locate(child)
            out.append(_property("child", "valueCode", child, c.display if c else None))
    if _wanted(requested, "inactive"):
        out.append(_property("inactive", "valueBoolean", concept.inactive))
    # what the provider adds to every answer (CPT: the AMA copyright) is given whatever
    # `property` asks for
    extra: list[Prop] = list(getattr(provider, "extra_properties", lambda c: [])(concept))
    for prop in [*concept.properties, *extra]:
        if prop.code in ("parent", "child") and provider.hierarchical:
            continue  # already given from the hierarchy
        if _wanted(requested, prop.code) or any(prop is x for x in extra):
            key, value = prop.to_part_value()
            out.append(_property(prop.code, key, value))
    return out


def lookup(registry: Registry, request: LookupRequest) -> dict[str, Any]:
    """The $lookup answer for request.system|version and request.code."""
    provider = resolve_code_system(registry, request.system, request.version)
    concept = provider.locate(request.code)
    if concept is None:
        version = f" version '{provider.version}'" if provider.version else ""
        history = code_history(registry, provider, request.code)
        raise NotFound(
            f"Unknown code '{request.code}' in the CodeSystem '{provider.url}'{version}"
            + (history.note() if history else ""),
            expression="code", message_id="Unknown_Code_in_Version",
            issues=[history.issue("code")] if history else None,
        )
    params: list[dict[str, Any]] = [
        _param("name", "valueString", provider.name or provider.title or provider.url),
        _param("code", "valueCode", concept.code),
        _param("system", "valueUri", provider.url),
    ]
    if provider.version:
        params.append(_param("version", "valueString", provider.version))
    display = pick_display(provider, concept, request.display_language)
    if display:
        params.append(_param("display", "valueString", display))
    if concept.definition:
        params.append(_param("definition", "valueString", concept.definition))
    params.append(_param("abstract", "valueBoolean", concept.abstract))
    params.extend(_designations(provider, concept))
    supplements = supplements_for(require_supplements(registry, request.use_supplements), provider.url)
    params.extend(_supplement_designations(supplements, provider.url, concept.code))
    params.extend(_properties(provider, concept, request.properties))
    params.extend({"name": "used-supplement", "valueCanonical": canonical(s)} for s in supplements)
    return {"resourceType": "Parameters", "parameter": params}


def handle_lookup(ctx: OperationContext) -> dict[str, Any]:
    """CodeSystem/$lookup (type and instance level)."""
    url = ctx.instance.get("url") if ctx.instance else None
    request = lookup_request(ctx.bag, url)
    if request.display_language is None:
        request.display_language = ctx.accept_language
    if ctx.instance is not None and request.version is None:
        request.version = ctx.instance.get("version")
    return lookup(ctx.registry, request)
