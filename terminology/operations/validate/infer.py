"""inferSystem: which code system a bare code belongs to, given the value set it is checked against.

R4 ValueSet/$validate-code: with inferSystem=true the server works the system out from the value
set; when none, or more than one, of the value set's systems holds the code, it says so.
"""

from __future__ import annotations

from typing import Any

from terminology.errors import FhirError
from terminology.operations.validate.messages import message
from terminology.operations.validate.state import RequestState
from terminology.registry import Registry
from terminology.valuesets.compose import ComposeOptions, expand_compose


def _needs_expansion(compose: dict[str, Any]) -> bool:
    """Imports or system-less sets can only be answered from the expansion."""
    sets = [*compose.get("include", []), *compose.get("exclude", [])]
    return any(s.get("valueSet") or not s.get("system") for s in sets) or any(
        s.get("filter") for s in compose.get("exclude", []))


def _systems_from_expansion(registry: Registry, value_set: dict[str, Any],
                            options: ComposeOptions, code: str) -> list[str]:
    try:
        expansion = expand_compose(registry, value_set, options, max_size=10_000)
    except FhirError:
        return []
    out: list[str] = []
    for e in expansion.entries:
        if e.code == code and e.system not in out:
            out.append(e.system)
    return out


def _systems_from_includes(registry: Registry, value_set: dict[str, Any], options: ComposeOptions,
                           compose: dict[str, Any], code: str) -> list[str]:
    out: list[str] = []
    for include in compose.get("include", []):
        system = include["system"]
        provider = registry.code_system(system)
        if provider is None:
            return []
        if "concept" in include:
            hit = any(c.get("code") == code for c in include["concept"])
        else:
            hit = provider.locate(code) is not None
        if hit and system not in out:
            out.append(system)
    if len(out) > 1 and any(i.get("filter") for i in compose.get("include", [])):
        return _systems_from_expansion(registry, value_set, options, code)
    return out


def candidate_systems(registry: Registry, value_set: dict[str, Any], options: ComposeOptions,
                      code: str) -> list[str]:
    """The systems in the value set that hold `code`."""
    compose = value_set.get("compose")
    if compose is None:
        contains = value_set.get("expansion", {}).get("contains", [])
        return sorted({c["system"] for c in contains if c.get("code") == code and c.get("system")})
    if _needs_expansion(compose):
        return _systems_from_expansion(registry, value_set, options, code)
    return _systems_from_includes(registry, value_set, options, compose, code)


def determine_system(registry: Registry, value_set: dict[str, Any], options: ComposeOptions,
                     vs_url: str, code: str, path: str, rs: RequestState) -> str | None:
    """The one system of `value_set` (named `vs_url` in messages) holding `code`, or None
    with a cannot-infer issue."""
    systems = candidate_systems(registry, value_set, options, code)
    if len(systems) == 1:
        return systems[0]
    if len(systems) > 1:
        mid = "Unable_to_resolve_system__value_set_has_multiple_matches"
        text = message(mid, code, vs_url, ", ".join(sorted(systems)))
    else:
        mid = "UNABLE_TO_INFER_CODESYSTEM"
        text = message(mid, code, vs_url)
    rs.messages.append(text)
    rs.op.add("error", "not-found", "code", mid, text, "cannot-infer")
    return None
