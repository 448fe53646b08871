"""Is system|code in a value set? Answered without expanding it: the code is located in the
provider and each include's listed codes and filters are tested (R4 ValueSet.compose: some
include selects it and no exclude does; within an include, system part and imports are
intersected).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from terminology.errors import Issue, NotFound
from terminology.providers.base import CodeSystemProvider, Concept
from terminology.registry import Registry
from terminology.valuesets.entries import walk_contains
from terminology.valuesets.evaluation import (
    Evaluation,
    PreparedPart,
    include_concept_codes,
    selectable,
)
from terminology.valuesets.options import ComposeOptions
from terminology.valuesets.resolution import compile_filters


@dataclass
class MembershipResult:
    """The answer to "is system|code in this value set?"."""

    found: bool
    concept: Concept | None = None
    provider: CodeSystemProvider | None = None
    system_known: bool = True
    issues: list[Issue] = field(default_factory=list)


def _in_system_part(
    ev: Evaluation, include: dict[str, Any], where: str, system: str | None, code: str,
    version: str | None,
) -> tuple[Concept, CodeSystemProvider] | None:
    """The concept when the include's system/concept/filter part selects system|code."""
    if system is not None and include.get("system") != system:
        return None
    provider, listed, filters = prepared_part(ev, include, where, version)
    concept = provider.locate(code)
    if concept is None or not selectable(concept, ev):
        return None
    if listed is not None:
        key = concept.code if provider.case_sensitive else concept.code.lower()
        if key not in listed:
            return None
    for f in filters:
        if not f.matches(concept):
            return None
    return concept, provider


def prepared_part(ev: Evaluation, include: dict[str, Any], where: str,
                   version: str | None) -> PreparedPart:
    """The include's provider, listed codes and compiled filters, once per evaluation and
    coding version: an exclude is tested against every member of a big expansion."""
    key = (id(include), version)
    cached = ev._parts.get(key)
    if cached is not None and cached[0] is include:  # the include is held: its id is not reused
        return cached[1]
    provider = ev.provider_for(include, version)
    prepared = (provider, include_concept_codes(provider, include),
                compile_filters(provider, include, where))
    ev._parts[key] = (include, prepared)
    return prepared


def include_selects(
    ev: Evaluation, include: dict[str, Any], where: str, system: str | None, code: str,
    version: str | None,
) -> tuple[Concept | None, CodeSystemProvider | None] | None:
    """(concept, provider) when the include selects the code; None when it does not."""
    hit: tuple[Concept | None, CodeSystemProvider | None] = (None, None)
    if include.get("system"):
        found = _in_system_part(ev, include, where, system, code, version)
        if found is None:
            return None
        hit = found
        system = found[1].url
    for ref in include.get("valueSet", []):
        sub = membership(ev, ev.import_value_set(ref), system, code, version)
        if not sub.found:
            return None
        if hit[0] is None:
            hit = (sub.concept, sub.provider)
    return hit


def membership(
    ev: Evaluation, value_set: dict[str, Any], system: str | None, code: str, version: str | None
) -> MembershipResult:
    ev.enter(value_set)
    try:
        compose = value_set.get("compose")
        if compose is None:
            return _membership_in_expansion(ev, value_set, system, code, version)
        result = MembershipResult(False)
        for i, include in enumerate(compose.get("include", [])):
            ev.tick()
            hit = include_selects(ev, include, f"ValueSet.compose.include[{i}]", system, code, version)
            if hit is not None:
                result = MembershipResult(True, hit[0], hit[1])
                break
        if result.found:
            for i, exclude in enumerate(compose.get("exclude", [])):
                sys = result.provider.url if result.provider else system
                if include_selects(ev, exclude, f"ValueSet.compose.exclude[{i}]", sys, code, version):
                    return MembershipResult(False, result.concept, result.provider)
        return result
    finally:
        ev.leave()


def _membership_in_expansion(
    ev: Evaluation, value_set: dict[str, Any], system: str | None, code: str, version: str | None
) -> MembershipResult:
    """A value set given only as an expansion: search its contains."""
    for item in walk_contains(value_set.get("expansion", {}).get("contains", [])):
        if item.get("code") == code and (system is None or item.get("system") == system):
            if version and item.get("version") and item.get("version") != version:
                continue
            provider = ev.registry.code_system(item.get("system", ""), item.get("version"))
            concept = provider.locate(code) if provider else None
            return MembershipResult(True, concept, provider)
    return MembershipResult(False)


def check_membership(
    registry: Registry, value_set: dict[str, Any], system: str | None, code: str,
    version: str | None, options: ComposeOptions,
) -> MembershipResult:
    """Whether system|code (version) is in the value set, without expanding it.

    Unknown code systems in an include become issues (system_known False) rather than errors,
    so $validate-code can answer result=false; unknown imported value sets and cycles raise.
    """
    ev = Evaluation(registry, options, "validated")
    try:
        result = membership(ev, value_set, system, code, version)
    except NotFound as e:
        if e.issues[0].message_id not in (
            "UNKNOWN_CODESYSTEM", "UNKNOWN_CODESYSTEM_VERSION"
        ):
            raise
        return MembershipResult(False, system_known=False, issues=list(e.issues))
    result.issues.extend(ev.issues)
    if system is not None and not registry.has_code_system(system):
        result.system_known = False
    return result
