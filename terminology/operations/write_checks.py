"""Checks on a resource an author writes, beyond its structure: does its terminology hold up?

A pure function of (registry, resource): the issues found, errors and warnings, each naming
its element by FHIRPath `expression`. The HTTP layer stores nothing when any is an error.

- ValueSet: every include's code system is known (a warning otherwise: the include is then
  like not-present content, its codes unchecked), every enumerated concept exists in it (an
  error; a warning when the code system is only a fragment), a display that differs from the
  code system's is a warning, every imported value set resolves, and the value set expands
  (an import cycle or a bad filter is an error; too many members is not).
- ConceptMap: codes of known source and target code systems exist.
- CodeSystem: a supplement names a known code system (a warning otherwise).
"""

from __future__ import annotations

import copy
from typing import Any

from terminology.content import make_provider, resource_problems
from terminology.errors import FhirError, Issue, TooCostly
from terminology.providers.base import CodeSystemProvider
from terminology.registry import Registry
from terminology.valuesets.compose import ComposeOptions, expand_compose

UNKNOWN_SYSTEM_IDS = ("UNKNOWN_CODESYSTEM_EXP", "UNKNOWN_CODESYSTEM_VERSION_EXP",
                      "UNKNOWN_CODESYSTEM", "UNKNOWN_CODESYSTEM_VERSION")


def write_issues(registry: Registry, resource: dict[str, Any], max_size: int) -> list[Issue]:
    """Every problem with writing `resource` over `registry`: structure, then terminology."""
    structural = [Issue("error", "structure", problem, [path])
                  for path, problem in resource_problems(resource)]
    if structural:
        return structural
    rtype = resource["resourceType"]
    if rtype == "ValueSet":
        return value_set_issues(registry, resource, max_size)
    if rtype == "ConceptMap":
        return concept_map_issues(registry, resource)
    return code_system_issues(registry, resource)


def _code_issues(provider: CodeSystemProvider, code: str, display: str | None,
                 where: str) -> list[Issue]:
    concept = provider.locate(code)
    if concept is None:
        partial = provider.content in ("fragment", "example", "not-present")
        return [Issue("warning" if partial else "error", "code-invalid",
                      f"Unknown code '{code}' in the CodeSystem '{provider.url}'"
                      + (f" ({provider.content} content: it may exist in the full system)" if partial else ""),
                      [f"{where}.code"], tx_code="invalid-code")]
    if display:
        known = {concept.display or ""} | {d.value for d in concept.designations}
        if display not in known:
            return [Issue("warning", "invalid",
                          f"The display '{display}' for '{code}' is not the code system's "
                          f"('{concept.display}')", [f"{where}.display"], tx_code="invalid-display")]
    return []


def value_set_issues(registry: Registry, value_set: dict[str, Any], max_size: int) -> list[Issue]:
    """Terminology problems of a ValueSet: systems, concepts, displays, imports, expansion."""
    issues: list[Issue] = []
    compose = value_set.get("compose") or {}
    overlay = registry.overlay()
    overlay.add_value_set(value_set)
    for part in ("include", "exclude"):
        for i, include in enumerate(compose.get(part, [])):
            issues += _include_issues(overlay, include, f"ValueSet.compose.{part}[{i}]")
    if any(i.severity == "error" for i in issues) or not compose.get("include"):
        return issues
    checkable = _known_systems_only(registry, value_set)
    if checkable is None:
        return issues
    try:
        expand_compose(overlay, checkable, ComposeOptions(), max_size=max_size)
    except TooCostly:
        pass  # big, not broken
    except FhirError as e:
        if e.issues[0].message_id not in UNKNOWN_SYSTEM_IDS:  # warned above (or an import's)
            issues.append(Issue("error", "processing", f"The value set cannot be expanded: {e.text}",
                                ["ValueSet.compose"], tx_code=e.issues[0].tx_code,
                                message_id=e.issues[0].message_id))
    return issues


def _include_issues(registry: Registry, include: dict[str, Any], where: str) -> list[Issue]:
    issues: list[Issue] = []
    system = include.get("system")
    if system:
        provider = registry.code_system(system, include.get("version"))
        if provider is None:
            shown = f"{system}|{include['version']}" if include.get("version") else system
            issues.append(Issue(
                "warning", "not-found",
                f"The CodeSystem '{shown}' is not known to this server: the include is treated "
                "as not-present content and its codes are not checked",
                [f"{where}.system"], tx_code="not-found", message_id="UNKNOWN_CODESYSTEM"))
        else:
            for j, concept in enumerate(include.get("concept", [])):
                issues += _code_issues(provider, str(concept.get("code")), concept.get("display"),
                                       f"{where}.concept[{j}]")
    for k, ref in enumerate(include.get("valueSet", [])):
        if registry.value_set(ref) is None:
            issues.append(Issue("error", "not-found",
                                f"The imported value set '{ref}' is not known to this server",
                                [f"{where}.valueSet[{k}]"], tx_code="not-found",
                                message_id="VS_EXP_IMPORT_UNK"))
    return issues


def _known_systems_only(registry: Registry, value_set: dict[str, Any]) -> dict[str, Any] | None:
    """The value set with includes of unknown code systems dropped (None: nothing left)."""
    checkable = copy.deepcopy(value_set)
    compose = checkable.get("compose", {})

    def known(part: dict[str, Any]) -> bool:
        system = part.get("system")
        return not system or registry.code_system(system, part.get("version")) is not None

    includes = []
    for include in compose.get("include", []):
        if not known(include):
            include = {"valueSet": include["valueSet"]} if include.get("valueSet") else {}
        if include:
            includes.append(include)
    if not includes:
        return None
    compose["include"] = includes
    compose["exclude"] = [e for e in compose.get("exclude", []) if known(e)]
    return checkable


def concept_map_issues(registry: Registry, concept_map: dict[str, Any]) -> list[Issue]:
    """Codes of a ConceptMap's known source and target code systems exist."""
    issues: list[Issue] = []
    for i, group in enumerate(concept_map.get("group", [])):
        where = f"ConceptMap.group[{i}]"
        source = _known(registry, group.get("source"), group.get("sourceVersion"), f"{where}.source", issues)
        target = _known(registry, group.get("target"), group.get("targetVersion"), f"{where}.target", issues)
        for j, element in enumerate(group.get("element", [])):
            here = f"{where}.element[{j}]"
            if source is not None and "code" in element:
                issues += _code_issues(source, str(element["code"]), element.get("display"), here)
            for k, tgt in enumerate(element.get("target", [])):
                if target is not None and "code" in tgt:
                    issues += _code_issues(target, str(tgt["code"]), tgt.get("display"), f"{here}.target[{k}]")
    return issues


def _known(registry: Registry, system: str | None, version: str | None, where: str,
           issues: list[Issue]) -> CodeSystemProvider | None:
    if not system:
        return None
    provider = registry.code_system(system, version)
    if provider is None:
        issues.append(Issue("warning", "not-found",
                            f"The CodeSystem '{system}' is not known to this server: its codes are not checked",
                            [where], tx_code="not-found", message_id="UNKNOWN_CODESYSTEM"))
    return provider


def code_system_issues(registry: Registry, code_system: dict[str, Any]) -> list[Issue]:
    """The code system can be served (its indexes build); a supplement names a known system."""
    issues: list[Issue] = []
    if code_system.get("content") != "supplement":
        try:
            provider = make_provider(code_system)
            prepare = getattr(provider, "prepare_indexes", None)
            if prepare is not None:
                prepare()
        except FhirError as e:
            issues.append(Issue("error", "processing", f"The CodeSystem cannot be served: {e.text}",
                                ["CodeSystem"]))
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            issues.append(Issue("error", "processing", f"The CodeSystem cannot be served: {e}",
                                ["CodeSystem"]))
    if code_system.get("content") == "supplement":
        base = code_system.get("supplements")
        if not base:
            issues.append(Issue("error", "required", "A supplement must name the code system it "
                                "supplements", ["CodeSystem.supplements"]))
        elif not registry.has_code_system(base):
            issues.append(Issue("warning", "not-found", f"The supplemented CodeSystem '{base}' is "
                                "not known to this server", ["CodeSystem.supplements"],
                                tx_code="not-found"))
    return issues
