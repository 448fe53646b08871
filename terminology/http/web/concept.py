"""What the concept page shows: the $lookup answer made readable, the value sets holding
the code, the modifiers a code system offers, and expression validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from terminology.errors import FhirError
from terminology.http.web.calls import FhirCall, has_operation, operation, parameter, run
from terminology.providers.base import CodeSystemProvider, Concept
from terminology.registry import Registry
from terminology.valuesets.compose import ComposeOptions, check_membership

# Project-defined imaging facets (see the CPT CodeSystem's property descriptions).
IMAGING_FACETS = ("modality", "body-region", "contrast")
HIERARCHY_PROPERTIES = ("parent", "child")


@dataclass
class PropertyRow:
    """One property value: code, value (as text), a description, and whether it is a code
    of the same system (parent/child) that the page can link."""

    code: str
    value: str
    description: str | None = None
    links_code: bool = False


@dataclass
class DesignationRow:
    """One designation: language, use (display text of the use coding) and value."""

    language: str | None
    use: str | None
    value: str


@dataclass
class ConceptView:
    """The $lookup answer for one code, split into what the page lays out."""

    system: str
    version: str | None
    code: str
    name: str | None
    display: str | None
    definition: str | None
    abstract: bool
    designations: list[DesignationRow] = field(default_factory=list)
    properties: list[PropertyRow] = field(default_factory=list)

    @property
    def facets(self) -> list[PropertyRow]:
        """The imaging facets among the properties, in facet order."""
        return sorted((p for p in self.properties if p.code in IMAGING_FACETS),
                      key=lambda p: IMAGING_FACETS.index(p.code))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):  # Coding / Quantity values
        return str(value.get("display") or value.get("code") or value.get("value") or value)
    return str(value)


def _parts(param: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for part in param.get("part", []):
        out[part["name"]] = next((v for k, v in part.items() if k.startswith("value")), None)
    return out


def concept_view(params: dict[str, Any]) -> ConceptView:
    """A ConceptView from a $lookup Parameters answer."""
    view = ConceptView(
        system=parameter(params, "system"), version=parameter(params, "version"),
        code=parameter(params, "code"), name=parameter(params, "name"),
        display=parameter(params, "display"), definition=parameter(params, "definition"),
        abstract=bool(parameter(params, "abstract")),
    )
    for p in params.get("parameter", []):
        parts = _parts(p)
        if p["name"] == "designation":
            use = parts.get("use")
            view.designations.append(DesignationRow(
                parts.get("language"), (use.get("display") or use.get("code")) if use else None,
                str(parts.get("value"))))
        elif p["name"] == "property":
            code = str(parts.get("code"))
            view.properties.append(PropertyRow(code, _text(parts.get("value")), parts.get("description"),
                                               code in HIERARCHY_PROPERTIES))
    return view


def lookup_call(system: str, code: str, version: str | None) -> FhirCall:
    """The $lookup request for system|version and code."""
    return operation("CodeSystem", "lookup", ("system", system), ("version", version), ("code", code))


# -- value sets holding the code ---------------------------------------------------------------


@dataclass
class Membership:
    """A loaded value set that contains the code, and the request that said so (when the
    server has ValueSet/$validate-code; before that, the compose engine answered)."""

    value_set: dict[str, Any]
    call: FhirCall | None


def _member_by_validate(value_set: dict[str, Any], system: str, code: str,
                        version: str | None) -> Membership | None:
    call = operation("ValueSet", "validate-code", ("url", value_set.get("url")),
                     ("valueSetVersion", value_set.get("version")), ("system", system),
                     ("systemVersion", version), ("code", code))
    return Membership(value_set, call) if parameter(run(call), "result") is True else None


def _member_by_compose(registry: Registry, value_set: dict[str, Any], system: str, code: str,
                       version: str | None) -> Membership | None:
    result = check_membership(registry, value_set, system, code, version, ComposeOptions())
    return Membership(value_set, None) if result.found else None


def memberships(registry: Registry, system: str, code: str, version: str | None) -> list[Membership]:
    """The loaded value sets that contain system|code, by title."""
    found = []
    for value_set in registry.resources("ValueSet"):
        try:
            if has_operation("ValueSet", "validate-code"):
                hit = _member_by_validate(value_set, system, code, version)
            else:
                hit = _member_by_compose(registry, value_set, system, code, version)
        except FhirError:
            continue  # a value set that cannot be evaluated (unknown import...) holds nothing
        if hit is not None:
            found.append(hit)
    return sorted(found, key=lambda m: str(m.value_set.get("title") or m.value_set.get("name") or ""))


# -- modifiers and expressions -------------------------------------------------------------------


def is_modifier(concept: Concept) -> bool:
    """Whether the concept is a modifier (property modifier = true, as CPT marks them)."""
    return True in concept.property_values("modifier")


def takes_modifiers(concept: Concept) -> bool:
    """Whether modifiers may be appended: a base code, not a modifier nor an expression
    that already carries modifiers (property modified = true)."""
    return not is_modifier(concept) and True not in concept.property_values("modified")


def modifiers(provider: CodeSystemProvider) -> list[Concept]:
    """The code system's modifier concepts, in code system order."""
    return [c for c in provider.iterate() if is_modifier(c)]


@dataclass
class ExpressionResult:
    """The answer to "is this expression valid?": valid, the display, and the issues
    (severity, message) the server gave: the rule broken, or a warning on a valid code."""

    expression: str
    valid: bool
    display: str | None
    issues: list[tuple[str, str]]
    call: FhirCall


def _issues(answer: dict[str, Any]) -> list[tuple[str, str]]:
    """(severity, text) of the `issues` OperationOutcome in a $validate-code answer, else
    its `message`."""
    for p in answer.get("parameter", []):
        if p.get("name") == "issues":
            return [(i.get("severity", "error"), (i.get("details") or {}).get("text") or i.get("diagnostics", ""))
                    for i in p.get("resource", {}).get("issue", [])]
    message = parameter(answer, "message")
    return [("error", message)] if message else []


def validate_expression(system: str, version: str | None, expression: str) -> ExpressionResult:
    """Validate a code expression (e.g. 72126:26) with CodeSystem/$validate-code, or with
    $lookup while the server has no $validate-code."""
    if has_operation("CodeSystem", "validate-code"):
        call = operation("CodeSystem", "validate-code", ("url", system), ("version", version),
                         ("code", expression))
        answer = run(call)
        return ExpressionResult(expression, parameter(answer, "result") is True,
                                parameter(answer, "display"), _issues(answer), call)
    call = lookup_call(system, expression, version)
    try:
        answer = run(call)
    except FhirError as e:
        return ExpressionResult(expression, False, None, [(i.severity, i.text) for i in e.issues], call)
    return ExpressionResult(expression, True, parameter(answer, "display"), [], call)


# -- mappings: the loaded ConceptMaps that translate the code --------------------------------


@dataclass
class MappedTarget:
    """One target of a mapping: the coding, its equivalence, the map's comment, and whether
    the target system is loaded here (so the page can link its concept page)."""

    system: str | None
    code: str
    display: str | None
    equivalence: str
    comment: str | None
    products: list[tuple[str, str]]  # (element, code), e.g. the target's contrast
    loaded: bool


@dataclass
class Mapping:
    """A ConceptMap that translates the code, its targets, and the $translate that said so."""

    concept_map: dict[str, Any]
    targets: list[MappedTarget]
    call: FhirCall


def _maps_from(registry: Registry, system: str) -> list[dict[str, Any]]:
    """The loaded ConceptMaps with a group whose source is `system`, by title."""
    found = [cm for cm in registry.resources("ConceptMap")
             if any(g.get("source") == system for g in cm.get("group", []))]
    return sorted(found, key=lambda cm: str(cm.get("title") or cm.get("name") or cm.get("url")))


def _target(registry: Registry, match: dict[str, Any]) -> MappedTarget | None:
    parts: dict[str, Any] = {}
    products: list[tuple[str, str]] = []
    for part in match.get("part", []):
        if part["name"] == "product":
            sub = _parts(part)
            products.append((str(sub.get("element", "")).rsplit(":", 1)[-1],
                             str((sub.get("concept") or {}).get("code", ""))))
        else:
            parts[part["name"]] = next((v for k, v in part.items() if k.startswith("value")), None)
    coding = parts.get("concept") or {}
    if not coding.get("code"):
        return None
    target_system = coding.get("system")
    loaded = isinstance(target_system, str) and registry.has_code_system(target_system)
    return MappedTarget(target_system, coding["code"], coding.get("display"),
                        str(parts.get("equivalence") or ""), parts.get("message"), products, loaded)


def mappings(registry: Registry, system: str, code: str) -> list[Mapping]:
    """What each loaded ConceptMap from `system` maps the code to (maps with no match for
    the code are left out), asked with ConceptMap/$translate as a client would."""
    out: list[Mapping] = []
    for cm in _maps_from(registry, system):
        canonical = f"{cm.get('url')}|{cm['version']}" if cm.get("version") else cm.get("url")
        call = operation("ConceptMap", "translate", ("url", canonical), ("system", system),
                         ("code", code))
        try:
            answer = run(call)
        except FhirError:
            continue
        targets = [t for p in answer.get("parameter", []) if p.get("name") == "match"
                   if (t := _target(registry, p)) is not None]
        if targets:
            out.append(Mapping(cm, targets, call))
    return out
