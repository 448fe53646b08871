"""CodeSystem supplements: which apply to a request, and finding the ones it names.

A supplement adds designations and properties to another code system's concepts. It applies
only when it is asked for, by a `useSupplement` parameter or by the value set's
`valueset-supplement` extension; a supplement that is named but not known is an error
(VALUESET_SUPPLEMENT_MISSING), the same for $lookup, $validate-code and $expand.
"""

from __future__ import annotations

from typing import Any

from terminology.errors import FhirError
from terminology.registry import Registry, split_canonical

SUPPLEMENT_EXT = "http://hl7.org/fhir/StructureDefinition/valueset-supplement"


def named_supplements(requested: list[str], value_set: dict[str, Any] | None = None) -> list[str]:
    """Canonicals of the supplements asked for: useSupplement, then the value set's extension."""
    named = list(requested)
    for ext in (value_set or {}).get("extension", []):
        if ext.get("url") == SUPPLEMENT_EXT:
            ref = ext.get("valueCanonical") or ext.get("valueUri") or ext.get("valueString")
            if ref and ref not in named:
                named.append(ref)
    return named


def missing_supplement_error(missing: list[str]) -> FhirError:
    """The 4xx for supplements that were asked for but are not known."""
    noun = "supplement" if len(missing) == 1 else "supplements"
    return FhirError(f"Required {noun} not found: {', '.join(missing)}", code="not-found",
                     tx_code="not-found", message_id="VALUESET_SUPPLEMENT_MISSING", status=422)


def require_supplements(registry: Registry, named: list[str]) -> list[dict[str, Any]]:
    """The supplement resources for `named` canonicals; 4xx naming every one not known."""
    found: list[dict[str, Any]] = []
    missing: list[str] = []
    for ref in named:
        url, version = split_canonical(ref)
        supplement = registry.supplement(url, version)
        if supplement is None:
            missing.append(ref)
        else:
            found.append(supplement)
    if missing:
        raise missing_supplement_error(missing)
    return found


def supplements_for(supplements: list[dict[str, Any]], system: str) -> list[dict[str, Any]]:
    """Those of `supplements` that supplement `system`."""
    return [s for s in supplements if split_canonical(s.get("supplements", ""))[0] == system]


def canonical(supplement: dict[str, Any]) -> str:
    """url|version of a supplement (url alone when it has no version)."""
    url = str(supplement.get("url", ""))
    return f"{url}|{supplement['version']}" if supplement.get("version") else url


def supplement_concepts(supplements: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(supplemented system, code) -> the supplements' concept dicts for that code."""
    index: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for sup in supplements:
        base = split_canonical(sup.get("supplements", ""))[0]
        stack = list(sup.get("concept", []))
        while stack:
            c = stack.pop()
            index.setdefault((base, c.get("code", "")), []).append(c)
            stack.extend(c.get("concept", []))
    return index
