"""ValueSet.compose evaluation, shared by $expand and $validate-code.

Two questions are asked of a compose:

* `check_membership`: is system|code in the value set? Answered without expanding the value
  set: the code is located in the provider and each filter's `matches()` is tested.
* `expand_compose`: every member, in order, with hierarchy where the code system has one.

R4 ValueSet.compose: a code is in the value set when some include selects it and no exclude
does. Within one include, `system` (+concept list / filters) and `valueSet` imports are
intersected; the includes are unioned.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from terminology.errors import FhirError, Issue, NotFound, TooCostly, Unprocessable
from terminology.providers.base import CodeSystemProvider, Concept, ConceptFilter, Designation
from terminology.providers.filters import Deadline, current_deadline
from terminology.registry import Registry, split_canonical, version_key, version_matches
from terminology.valuesets.stream import ConceptRun, EntryRun, Members, Run

# R5 filter operators carried in R4 by this extension on `_op` (child-of, descendent-leaf).
FILTER_OP_EXT = "http://hl7.org/fhir/5.0/StructureDefinition/extension-ValueSet.compose.include.filter.op"
HIERARCHY_OPS = frozenset({"is-a", "descendent-of"})


@dataclass
class ComposeOptions:
    """What affects evaluation of a compose (request parameters that change membership)."""

    active_only: bool = False
    system_versions: dict[str, str] = field(default_factory=dict)  # system-version
    force_versions: dict[str, str] = field(default_factory=dict)  # force-system-version
    check_versions: dict[str, str] = field(default_factory=dict)  # check-system-version
    default_valueset_versions: dict[str, str] = field(default_factory=dict)
    exclude_not_for_ui: bool = False
    deadline: Deadline | None = None
    # versionsMatch: the versions of a code system mean the same codes, so a code is one member
    # whatever version it comes from (None: not said; see _versions_match for the default)
    versions_match: bool | None = None


class VersionedRequest(Protocol):
    """What $expand and $validate-code requests share that changes membership."""

    active_only: bool
    system_versions: dict[str, str]
    force_versions: dict[str, str]
    check_versions: dict[str, str]
    default_valueset_versions: dict[str, str]


def request_options(request: VersionedRequest, **extra: Any) -> ComposeOptions:
    """ComposeOptions from a request's activeOnly and version rules (+ operation-specific ones)."""
    return ComposeOptions(
        active_only=request.active_only,
        system_versions=dict(request.system_versions),
        force_versions=dict(request.force_versions),
        check_versions=dict(request.check_versions),
        default_valueset_versions=dict(request.default_valueset_versions),
        **extra,
    )


EXPANSION_PARAMETER_EXTS = (
    "http://hl7.org/fhir/StructureDefinition/valueset-expansion-parameter",
    "http://hl7.org/fhir/tools/StructureDefinition/valueset-expansion-parameter",
)


def value_set_parameters(value_set: dict[str, Any] | None) -> dict[str, Any]:
    """Parameters a value set states for its own use (compose valueset-expansion-parameter):
    name -> value (the last one given wins)."""
    out: dict[str, Any] = {}
    for ext in ((value_set or {}).get("compose") or {}).get("extension", []):
        if ext.get("url") not in EXPANSION_PARAMETER_EXTS:
            continue
        parts = {e.get("url"): e for e in ext.get("extension", [])}
        name, value = parts.get("name", {}), parts.get("value", {})
        key = next((k for k in value if k.startswith("value")), None)
        n = name.get("valueCode") or name.get("valueString")
        if n and key:
            out[n] = value[key]
    return out


# -- value sets and code systems --------------------------------------------------------------


def vs_canonical(value_set: dict[str, Any]) -> str:
    """'url|version' (or just url) of a value set or other canonical resource, as messages quote it."""
    url = value_set.get("url", "")
    version = value_set.get("version")
    return f"{url}|{version}" if version else url


def resolve_value_set(
    registry: Registry, url: str, version: str | None, options: ComposeOptions | None = None
) -> dict[str, Any]:
    """The ValueSet for url (+version, or the default-valueset-version); NotFound otherwise."""
    base, embedded = split_canonical(url)
    version = version or embedded
    if version is None and options is not None:
        version = options.default_valueset_versions.get(base)
    found = registry.value_set(base, version)
    if found is None:
        shown = f"{base}|{version}" if version else base
        raise NotFound(
            f"A definition for the value Set '{shown}' could not be found",
            message_id="Unable_to_resolve_value_Set_", tx_code="not-found",
        )
    return found


def _resolve_import(
    registry: Registry, ref: str, options: ComposeOptions
) -> dict[str, Any]:
    """An imported value set (compose.include.valueSet); NotFound names the import."""
    base, version = split_canonical(ref)
    version = version or options.default_valueset_versions.get(base)
    found = registry.value_set(base, version)
    if found is not None:
        return found
    if version:
        raise NotFound(
            f"Unable to find included value set '{base}' version '{version}'",
            message_id="VS_EXP_IMPORT_UNK_PINNED", tx_code="not-found",
        )
    raise NotFound(
        f"Unable to find included value set '{base}'",
        message_id="VS_EXP_IMPORT_UNK", tx_code="not-found",
    )


def choose_version(
    system: str, include_version: str | None, options: ComposeOptions,
    coding_version: str | None = None, used: list[tuple[str, str]] | None = None,
) -> str | None:
    """The code system version an include uses.

    force-system-version beats everything; then the include's own version, the coding's,
    check-system-version (its pattern picks the newest matching version), system-version,
    and finally the newest. `used` collects the version parameters that made the choice.
    """
    def note(name: str, version: str) -> str:
        if used is not None and (name, f"{system}|{version}") not in used:
            used.append((name, f"{system}|{version}"))
        return version

    if system in options.force_versions:
        return note("force-system-version", options.force_versions[system])
    if include_version or coding_version:
        return include_version or coding_version
    if system in options.check_versions:
        return note("check-system-version", options.check_versions[system])
    if system in options.system_versions:
        return note("system-version", options.system_versions[system])
    return None


def _known_versions(registry: Registry, system: str) -> str:
    versions = [v for v in registry.code_system_versions(system) if v]
    return " or ".join(versions) if versions else "(none)"


def resolve_include_provider(
    registry: Registry, system: str, version: str | None, *, purpose: str = "expanded"
) -> CodeSystemProvider:
    """The provider for an include's system|version, or a NotFound worded as tx.fhir.org's.

    purpose: 'expanded' ($expand: "...so the value set cannot be expanded") or 'validated'.
    """
    provider = registry.code_system(system, version)
    if provider is not None:
        return provider
    what = "the value set cannot be expanded" if purpose == "expanded" else "the code cannot be validated"
    if version is not None and registry.has_code_system(system):
        raise NotFound(
            f"A definition for CodeSystem '{system}' version '{version}' could not be found, "
            f"so {what}. Valid versions: {_known_versions(registry, system)}",
            message_id="UNKNOWN_CODESYSTEM_VERSION_EXP" if purpose == "expanded" else "UNKNOWN_CODESYSTEM_VERSION",
            tx_code="not-found",
        )
    raise NotFound(
        f"A definition for CodeSystem '{system}' could not be found, so {what}",
        message_id="UNKNOWN_CODESYSTEM_EXP" if purpose == "expanded" else "UNKNOWN_CODESYSTEM",
        tx_code="not-found",
    )


def _check_version(provider: CodeSystemProvider, options: ComposeOptions) -> None:
    """check-system-version: the version used must match the one the client requires."""
    wanted = options.check_versions.get(provider.url)
    if wanted is None or provider.url in options.force_versions:
        return
    if version_matches(wanted, provider.version) or wanted == provider.version:
        return
    raise Unprocessable(
        f"The version '{provider.version}' is not allowed for system '{provider.url}': "
        f"required to be '{wanted}' by a version-check parameter",
        code="exception", message_id="VALUESET_VERSION_CHECK", tx_code="version-error",
    )


# -- filters ----------------------------------------------------------------------------------


def filter_op(raw: dict[str, Any]) -> str | None:
    """A filter's operator, including R5 operators sent as the R4 `_op` extension."""
    op = raw.get("op")
    if op:
        return str(op)
    for ext in (raw.get("_op") or {}).get("extension", []):
        if ext.get("url") == FILTER_OP_EXT:
            return ext.get("valueCode")
    return None


def compile_filters(
    provider: CodeSystemProvider, include: dict[str, Any], where: str
) -> list[ConceptFilter]:
    """The include's filters compiled against `provider`; 400 for a malformed filter."""
    out = []
    for j, raw in enumerate(include.get("filter", [])):
        prop, op, value = raw.get("property"), filter_op(raw), raw.get("value")
        if value is None or value == "":
            raise FhirError(
                f"The system {provider.url} filter with property = {prop}, op = {op} has no value",
                expression=f"{where}.filter[{j}]", tx_code="vs-invalid",
                message_id="UNABLE_TO_HANDLE_SYSTEM_FILTER_WITH_NO_VALUE",
            )
        if not prop or not op:
            raise FhirError(
                f"The filter {where}.filter[{j}] needs a property and an op",
                expression=f"{where}.filter[{j}]", tx_code="vs-invalid",
            )
        out.append(provider.filter(str(prop), op, str(value)))
    return out


# -- the evaluation context -------------------------------------------------------------------


MAX_IMPORT_DEPTH = 64  # value sets importing value sets: as deep as a body may nest JSON


class _Evaluation:
    """State of one evaluation: registry, options, the import stack (for cycles), caches."""

    def __init__(self, registry: Registry, options: ComposeOptions, purpose: str) -> None:
        self.registry = registry
        self.options = options
        self.purpose = purpose
        self.stack: list[str] = []
        self.containers: list[dict[str, Any]] = []  # value sets being evaluated, outermost first
        self.used_systems: list[str] = []
        self.used_valuesets: list[str] = []
        self.version_parameters: list[tuple[str, str]] = []  # (parameter name, url|version)
        self.warnings: list[tuple[str, str]] = []  # (draft|experimental|..., url|version)
        self.providers: list[CodeSystemProvider] = []
        self.issues: list[Issue] = []
        self.max_size: int | None = None
        self.versions_match = False  # what the outermost compose was evaluated with
        self._expanded: dict[str, Members] = {}
        # include/exclude system parts prepared once (see _prepared_part): tested per code
        self._parts: dict[tuple[int, str | None], tuple[dict[str, Any], _PreparedPart]] = {}

    def tick(self) -> None:
        """Honour the request deadline inside long loops."""
        deadline = self.options.deadline or current_deadline()
        if deadline is not None:
            deadline.check("The value set expansion")

    def enter(self, value_set: dict[str, Any], action: str = "processing") -> str:
        """Push a value set on the import stack; a value set already on it is a cycle."""
        key = vs_canonical(value_set)
        if key in self.stack:
            path = ", ".join(self.stack)
            raise Unprocessable(
                f"Found a circularity pointing to {key} {action} ValueSet with pathway [{path}]",
                message_id="VALUESET_CIRCULAR_REFERENCE", tx_code="vs-invalid",
            )
        if len(self.stack) >= MAX_IMPORT_DEPTH:  # each import is a level of recursion here
            raise TooCostly(f"The value set {key} is imported more than {MAX_IMPORT_DEPTH} value "
                            f"sets deep, the limit this server follows", status=400)
        self.stack.append(key)
        self.containers.append(value_set)
        # a value set's own draft/experimental status is not worth a warning; its
        # deprecation or withdrawal is
        for kind in status_warnings(value_set):
            if kind in ("deprecated", "withdrawn") and (kind, key) not in self.warnings:
                self.warnings.append((kind, key))
        return key

    def note_status(self, resource: dict[str, Any], canonical: str) -> None:
        """Record warning-draft/-experimental/-deprecated/-withdrawn for a resource used."""
        for kind in status_warnings(resource):
            if (kind, canonical) not in self.warnings:
                self.warnings.append((kind, canonical))

    def compose_inactive(self) -> bool | None:
        """ValueSet.compose.inactive of the value set being evaluated."""
        compose = self.containers[-1].get("compose") if self.containers else None
        return compose.get("inactive") if isinstance(compose, dict) else None

    def leave(self) -> None:
        self.stack.pop()
        self.containers.pop()

    def provider_for(self, include: dict[str, Any], coding_version: str | None = None) -> CodeSystemProvider:
        """The provider an include uses (version rules applied), recorded as used."""
        system = str(include.get("system"))
        version = choose_version(system, include.get("version"), self.options, coding_version,
                                 self.version_parameters)
        provider = resolve_include_provider(self.registry, system, version, purpose=self.purpose)
        _check_version(provider, self.options)
        if self.purpose == "expanded" and provider.content == "not-present":
            raise Unprocessable(f"The code system definition for {system} has no content, so this "
                                "expansion cannot be performed", code="business-rule")
        used = f"{provider.url}|{provider.version}" if provider.version else provider.url
        if used not in self.used_systems:
            self.used_systems.append(used)
            self.providers.append(provider)
            self.note_status(provider.resource, used)
        return provider

    def import_value_set(self, ref: str) -> dict[str, Any]:
        """An imported value set: '#id' names a contained one, anything else a canonical."""
        if ref.startswith("#"):
            return self._contained(ref)
        base, pinned = split_canonical(ref)
        default = self.options.default_valueset_versions.get(base)
        vs = _resolve_import(self.registry, ref, self.options)
        if not pinned and default:
            used = ("default-valueset-version", f"{base}|{default}")
            if used not in self.version_parameters:
                self.version_parameters.append(used)
        key = vs_canonical(vs)
        if key not in self.used_valuesets:
            self.used_valuesets.append(key)
        return vs

    def _contained(self, ref: str) -> dict[str, Any]:
        for container in reversed(self.containers):
            for res in container.get("contained", []):
                if res.get("resourceType") == "ValueSet" and res.get("id") == ref[1:]:
                    return dict(res)
        raise NotFound(f"Unable to find included value set '{ref}'",
                       message_id="VS_EXP_IMPORT_UNK", tx_code="not-found")


STANDARDS_STATUS_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-standards-status"


def status_warnings(resource: dict[str, Any]) -> list[str]:
    """What about a code system or value set deserves a warning: draft, experimental,
    deprecated or withdrawn (standards-status extension)."""
    out = []
    if resource.get("status") == "draft":
        out.append("draft")
    if resource.get("experimental") is True:
        out.append("experimental")
    for ext in resource.get("extension", []):
        if ext.get("url") == STANDARDS_STATUS_EXT and ext.get("valueCode") in ("deprecated", "withdrawn"):
            out.append(ext["valueCode"])
    return out


def _selectable(concept: Concept, ev: _Evaluation) -> bool:
    """activeOnly (or compose.inactive = false) drops inactive concepts; excludeNotForUI
    drops abstract (notSelectable) ones."""
    options = ev.options
    if concept.inactive and (options.active_only or ev.compose_inactive() is False):
        return False
    return not (options.exclude_not_for_ui and concept.abstract)


def _include_concept_codes(provider: CodeSystemProvider, include: dict[str, Any]) -> set[str] | None:
    """Codes an include enumerates (normalised for case), or None when it lists none."""
    if "concept" not in include:
        return None
    fold = not provider.case_sensitive
    return {(c.get("code", "").lower() if fold else c.get("code", "")) for c in include["concept"]}


# -- membership -------------------------------------------------------------------------------


@dataclass
class MembershipResult:
    """The answer to "is system|code in this value set?"."""

    found: bool
    concept: Concept | None = None
    provider: CodeSystemProvider | None = None
    system_known: bool = True
    issues: list[Issue] = field(default_factory=list)


def _in_system_part(
    ev: _Evaluation, include: dict[str, Any], where: str, system: str | None, code: str,
    version: str | None,
) -> tuple[Concept, CodeSystemProvider] | None:
    """The concept when the include's system/concept/filter part selects system|code."""
    if system is not None and include.get("system") != system:
        return None
    provider, listed, filters = _prepared_part(ev, include, where, version)
    concept = provider.locate(code)
    if concept is None or not _selectable(concept, ev):
        return None
    if listed is not None:
        key = concept.code if provider.case_sensitive else concept.code.lower()
        if key not in listed:
            return None
    for f in filters:
        if not f.matches(concept):
            return None
    return concept, provider


_PreparedPart = tuple[CodeSystemProvider, "set[str] | None", list[ConceptFilter]]


def _prepared_part(ev: _Evaluation, include: dict[str, Any], where: str,
                   version: str | None) -> _PreparedPart:
    """The include's provider, listed codes and compiled filters, once per evaluation and
    coding version: an exclude is tested against every member of a big expansion."""
    key = (id(include), version)
    cached = ev._parts.get(key)
    if cached is not None and cached[0] is include:  # the include is held: its id is not reused
        return cached[1]
    provider = ev.provider_for(include, version)
    prepared = (provider, _include_concept_codes(provider, include),
                compile_filters(provider, include, where))
    ev._parts[key] = (include, prepared)
    return prepared


def _include_selects(
    ev: _Evaluation, include: dict[str, Any], where: str, system: str | None, code: str,
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
        sub = _membership(ev, ev.import_value_set(ref), system, code, version)
        if not sub.found:
            return None
        if hit[0] is None:
            hit = (sub.concept, sub.provider)
    return hit


def _membership(
    ev: _Evaluation, value_set: dict[str, Any], system: str | None, code: str, version: str | None
) -> MembershipResult:
    ev.enter(value_set)
    try:
        compose = value_set.get("compose")
        if compose is None:
            return _membership_in_expansion(ev, value_set, system, code, version)
        result = MembershipResult(False)
        for i, include in enumerate(compose.get("include", [])):
            ev.tick()
            hit = _include_selects(ev, include, f"ValueSet.compose.include[{i}]", system, code, version)
            if hit is not None:
                result = MembershipResult(True, hit[0], hit[1])
                break
        if result.found:
            for i, exclude in enumerate(compose.get("exclude", [])):
                sys = result.provider.url if result.provider else system
                if _include_selects(ev, exclude, f"ValueSet.compose.exclude[{i}]", sys, code, version):
                    return MembershipResult(False, result.concept, result.provider)
        return result
    finally:
        ev.leave()


def _membership_in_expansion(
    ev: _Evaluation, value_set: dict[str, Any], system: str | None, code: str, version: str | None
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


def walk_contains(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every item of an expansion's contains, nested ones after their parent."""
    for item in items:
        yield item
        yield from walk_contains(item.get("contains", []))


def check_membership(
    registry: Registry, value_set: dict[str, Any], system: str | None, code: str,
    version: str | None, options: ComposeOptions,
) -> MembershipResult:
    """Whether system|code (version) is in the value set, without expanding it.

    Unknown code systems in an include become issues (system_known False) rather than errors,
    so $validate-code can answer result=false; unknown imported value sets and cycles raise.
    """
    ev = _Evaluation(registry, options, "validated")
    try:
        result = _membership(ev, value_set, system, code, version)
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


# -- expansion --------------------------------------------------------------------------------


@dataclass
class ExpansionEntry:
    """One member of an expansion (a `contains` item before rendering)."""

    system: str
    version: str | None
    code: str
    display: str | None
    concept: Concept | None = None
    provider: CodeSystemProvider | None = None
    abstract: bool = False
    inactive: bool = False
    designations: list[Designation] = field(default_factory=list)  # from the compose concept
    children: list[ExpansionEntry] = field(default_factory=list)
    nestable: bool = False  # came from a whole-system or hierarchy-filter include
    filtered: bool = False  # came from an include with (hierarchy) filters
    extensions: list[dict[str, Any]] = field(default_factory=list)  # from the compose concept

    @property
    def key(self) -> tuple[str, str | None, str]:
        """Identity in an expansion: system, version, code."""
        return self.system, self.version, self.code


@dataclass
class Expansion:
    """A computed expansion: flat entries in order, plus what the rendering needs."""

    members: Members  # built into entries only for the members shown
    used_systems: list[str] = field(default_factory=list)
    used_valuesets: list[str] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    unclosed: bool = False
    version_parameters: list[tuple[str, str]] = field(default_factory=list)  # those that applied
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (kind, url|version)
    unclosed_reasons: list[str] = field(default_factory=list)
    fragments: list[str] = field(default_factory=list)  # url|version of fragment code systems
    providers: list[CodeSystemProvider] = field(default_factory=list)  # in used_systems order
    versions_match: bool = False  # codes were merged across code system versions

    @property
    def entries(self) -> list[ExpansionEntry]:
        """Every member's entry, flat and in order (built on first use)."""
        return self.members.entries()

    @property
    def total(self) -> int:
        """Number of members (flat)."""
        return len(self.members)

    def nested(self) -> list[ExpansionEntry]:
        """Hierarchical roots: nestable entries placed under a nestable parent present here."""
        return nest_entries(self.entries)


def nest_entries(entries: list[ExpansionEntry], copy: bool = True) -> list[ExpansionEntry]:
    """Roots of the hierarchy formed by `entries` (children filled in; entries are copied
    unless `copy` is False, for entries built for this answer alone)."""
    copies = [_shallow(e) for e in entries] if copy else entries
    index = {(e.system, e.version, e.code): e for e in copies if e.nestable}
    roots: list[ExpansionEntry] = []
    for e in copies:
        parent = None
        if e.nestable and e.concept is not None:
            for p in _expansion_parents(e):
                parent = index.get((e.system, e.version, p))
                if parent is not None:
                    break
        if parent is None:
            roots.append(e)
        else:
            parent.children.append(e)
    return roots


def _expansion_parents(e: ExpansionEntry) -> list[str]:
    """Where an entry nests: the provider may restrict nesting to its display tree."""
    assert e.concept is not None
    parents = getattr(e.provider, "expansion_parents", None)
    return list(parents(e.concept)) if parents is not None else list(e.concept.parents)


def _shallow(e: ExpansionEntry) -> ExpansionEntry:
    return ExpansionEntry(e.system, e.version, e.code, e.display, e.concept, e.provider,
                          e.abstract, e.inactive, e.designations, [], e.nestable, e.filtered,
                          e.extensions)


def _entry(provider: CodeSystemProvider, concept: Concept, nestable: bool,
           vs_concept: dict[str, Any] | None = None, filtered: bool = False) -> ExpansionEntry:
    display = concept.display
    designations: list[Designation] = []
    if vs_concept is not None:
        display = vs_concept.get("display") or display
        designations = [Designation.from_fhir(d) for d in vs_concept.get("designation", [])]
    return ExpansionEntry(provider.url, provider.version, concept.code, display, concept, provider,
                          concept.abstract, concept.inactive, designations, [], nestable, filtered,
                          list(vs_concept.get("extension", [])) if vs_concept else [])


def _candidates(
    provider: CodeSystemProvider, filters: list[ConceptFilter]
) -> tuple[Iterable[Concept], list[ConceptFilter]]:
    """Concepts worth testing: the listed codes (each once) of the first listing filter, else
    all; and the filters still to test (a listing filter's own codes match it)."""
    ordered = getattr(provider, "ordered_concepts", None)
    for f in filters:
        span = getattr(f, "span", lambda: None)()
        if span is not None and ordered is not None:  # a subtree: one slice of the ordered list
            return list(ordered()[span[0]:span[1]]), [g for g in filters if g is not f]
    for f in filters:
        codes = f.codes()
        if codes is not None:
            located = (provider.locate(k) for k in dict.fromkeys(codes))
            return (c for c in located if c is not None), [g for g in filters if g is not f]
    return provider.iterate(), filters


def _may_drop(ev: _Evaluation) -> bool:
    """Whether _selectable can refuse a concept here (activeOnly, inactive, notForUI)."""
    options = ev.options
    return options.active_only or options.exclude_not_for_ui or ev.compose_inactive() is False


def _system_run(ev: _Evaluation, include: dict[str, Any], where: str) -> ConceptRun:
    """The concepts the include's system part (all / concept list / filters) selects."""
    provider = ev.provider_for(include)
    if "concept" in include:
        return _listed_run(ev, provider, include["concept"])
    filters = compile_filters(provider, include, where)
    ops = [filter_op(f) for f in include.get("filter", [])]
    nestable = all(op in HIERARCHY_OPS for op in ops)
    ordered = getattr(provider, "ordered_concepts", None)
    drop = _may_drop(ev)
    if not filters and ordered is not None and not drop:
        # the whole code system: its own ordered list, paged by position
        return ConceptRun(provider, ordered(), nestable=nestable, whole=True)
    candidates, tests = _candidates(provider, filters)
    if isinstance(candidates, list) and not tests and not drop:
        return ConceptRun(provider, candidates, nestable=nestable, filtered=bool(filters))
    chosen = []
    for concept in candidates:
        ev.tick()
        if (not drop or _selectable(concept, ev)) and all(f.matches(concept) for f in tests):
            chosen.append(concept)
    return ConceptRun(provider, chosen, nestable=nestable, filtered=bool(filters))


def _listed_run(ev: _Evaluation, provider: CodeSystemProvider,
                listed: list[dict[str, Any]]) -> ConceptRun:
    """The concepts an include lists (known and selectable ones, each once), with the
    compose concepts that may give them a display, designations and extensions."""
    concepts: list[Concept] = []
    raws: list[dict[str, Any]] = []
    seen: set[str] = set()
    for raw in listed:
        ev.tick()
        concept = provider.locate(raw.get("code", ""))
        if concept is not None and concept.code not in seen and _selectable(concept, ev):
            seen.add(concept.code)
            concepts.append(concept)
            raws.append(raw)
    return ConceptRun(provider, concepts, vs_concepts=raws)


def _imported_entries(ev: _Evaluation, include: dict[str, Any]) -> list[ExpansionEntry]:
    """Members of an include without a system: its imported value sets intersected."""
    imports = [ev.import_value_set(ref) for ref in include.get("valueSet", [])]
    if not imports:
        return []
    first, rest = imports[0], imports[1:]
    # members taken from another value set are listed flat
    return [ExpansionEntry(e.system, e.version, e.code, e.display, e.concept, e.provider,
                           e.abstract, e.inactive, e.designations, [], False, False, e.extensions)
            for e in _expand_vs(ev, first)
            if all(_membership(ev, vs, e.system, e.code, e.version).found for vs in rest)]


def _include_run(ev: _Evaluation, include: dict[str, Any], where: str) -> Run:
    """The members an include selects, as a run (entries are built only when shown)."""
    if not include.get("system"):
        return EntryRun(_imported_entries(ev, include))
    imports = [ev.import_value_set(ref) for ref in include.get("valueSet", [])]
    run = _system_run(ev, include, where)
    if not imports:
        return run
    url, version = run.provider.url, run.provider.version
    return run.keep(lambda _, c: all(_membership(ev, vs, url, c.code, version).found
                                     for vs in imports))


def _expand_vs(ev: _Evaluation, value_set: dict[str, Any]) -> Members:
    """The flat members of a value set (imports are expanded once per evaluation)."""
    key = vs_canonical(value_set)
    if key in ev._expanded and key not in ev.stack:
        return ev._expanded[key]
    ev.enter(value_set)
    try:
        compose = value_set.get("compose")
        if compose is None:
            out = Members([EntryRun(_entries_from_expansion(ev, value_set))], _entry)
        else:
            out = _expand_compose_members(ev, compose)
    finally:
        ev.leave()
    ev._expanded[key] = out
    return out


def _expand_compose_members(ev: _Evaluation, compose: dict[str, Any]) -> Members:
    excludes = compose.get("exclude", [])
    merge = _versions_match(compose, ev.options)
    if len(ev.stack) == 1:
        ev.versions_match = merge
    # Without excludes the top-level count only grows: stop as soon as it passes the limit.
    limit = ev.max_size if len(ev.stack) == 1 and not excludes else None
    runs: list[Run] = []
    for i, include in _newest_version_first(compose.get("include", [])):
        runs.append(_include_run(ev, include, f"ValueSet.compose.include[{i}]"))
        so_far = Members(runs, _entry)
        if limit is not None and not so_far.may_repeat(merge) and len(so_far) > limit:
            raise TooCostly("")  # replaced with the value set's message by expand_compose
    for exclude in excludes:
        _note_excluded_system(ev, exclude)
    members = Members(runs, _entry)
    if members.may_repeat(merge):
        # merged, a code is one member whatever version it comes from: the first (newest)
        members = members.deduplicated(merge)
    if not excludes:
        return members
    return members.keep(lambda system, version, code:
                        not _excluded_code(ev, excludes, system, version, code, merge))


def _versions_match(compose: dict[str, Any], options: ComposeOptions) -> bool:
    """Whether codes are compared across code system versions (versionsMatch).

    Unless the request or the value set says, tx.fhir.org assumes it for a compose that
    includes some versions of one code system and excludes other versions of it: excluding
    one version from another is only meaningful when a code means the same in both.
    """
    if options.versions_match is not None:
        return options.versions_match
    includes, excludes = compose.get("include", []), compose.get("exclude", [])
    if not includes or not excludes:
        return False
    system = includes[0].get("system")
    parts = [*includes, *excludes]
    if not system or not all(p.get("system") == system and p.get("version") for p in parts):
        return False
    included = {i.get("version") for i in includes}
    return not any(e.get("version") in included for e in excludes)


def _newest_version_first(includes: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """The includes with their index, in the order they are expanded: where a compose
    includes several versions of one code system, the newest goes first (as tx.fhir.org), so
    its members are listed before the older versions' and win when versions are merged."""
    indexed = list(enumerate(includes))
    by_system: dict[str, list[int]] = {}
    for pos, (_, inc) in enumerate(indexed):
        if inc.get("system") and inc.get("version"):
            by_system.setdefault(str(inc["system"]), []).append(pos)
    out = list(indexed)
    for positions in by_system.values():
        ranked = sorted((indexed[p] for p in positions),
                        key=lambda item: version_key(item[1].get("version")), reverse=True)
        for pos, item in zip(positions, ranked, strict=True):
            out[pos] = item
    return out


def _note_excluded_system(ev: _Evaluation, exclude: dict[str, Any]) -> None:
    """An exclude's code system is used by the expansion too (used-codesystem)."""
    if not exclude.get("system"):
        return
    with contextlib.suppress(NotFound):  # an exclude of an unknown code system removes nothing
        ev.provider_for(exclude)


def _excluded_code(ev: _Evaluation, excludes: list[dict[str, Any]], system: str,
                   version: str | None, code: str, merge: bool = False) -> bool:
    """Whether an exclude of the compose removes system|code (version)."""
    for i, exclude in enumerate(excludes):
        if (not merge and exclude.get("system") and exclude.get("version")
                and exclude.get("version") != version):
            continue
        if _include_selects(ev, exclude, f"ValueSet.compose.exclude[{i}]", system, code,
                            version if not exclude.get("version") else exclude.get("version")):
            return True
    return False


def _entries_from_expansion(ev: _Evaluation, value_set: dict[str, Any]) -> list[ExpansionEntry]:
    """Members of a value set that carries only an expansion."""
    out = []
    for item in walk_contains(value_set.get("expansion", {}).get("contains", [])):
        if not item.get("code"):
            continue
        provider = ev.registry.code_system(item.get("system", ""), item.get("version"))
        concept = provider.locate(item["code"]) if provider else None
        out.append(ExpansionEntry(item.get("system", ""), item.get("version"), item["code"],
                                  item.get("display"), concept, provider,
                                  bool(item.get("abstract")), bool(item.get("inactive"))))
    return out


def too_costly(value_set: dict[str, Any], limit: int) -> TooCostly:
    """The error for an expansion over `limit` members (tx.fhir.org's wording and id)."""
    return TooCostly(
        f"The value set '{vs_canonical(value_set)}' expansion has too many codes to produce (>{limit})",
        message_id="VALUESET_TOO_COSTLY",
    )


def expand_compose(
    registry: Registry, value_set: dict[str, Any], options: ComposeOptions, *,
    max_size: int | None = None,
) -> Expansion:
    """Every member of the value set, flat and in order; TooCostly past max_size members."""
    ev = _Evaluation(registry, options, "expanded")
    ev.max_size = max_size
    try:
        members = _expand_vs(ev, value_set)
    except TooCostly as e:
        if e.text or max_size is None:
            raise
        raise too_costly(value_set, max_size) from None
    if max_size is not None and len(members) > max_size:
        raise too_costly(value_set, max_size)
    reasons, fragments = _unclosed(ev)
    return Expansion(members, ev.used_systems, ev.used_valuesets, ev.issues, bool(reasons),
                     ev.version_parameters, ev.warnings, reasons, fragments, list(ev.providers),
                     ev.versions_match)


def _unclosed(ev: _Evaluation) -> tuple[list[str], list[str]]:
    """Why the expansion may not hold every member: a fragment, or a grammar (CPT modifiers)."""
    reasons: list[str] = []
    fragments: list[str] = []
    for p, used in zip(ev.providers, ev.used_systems, strict=True):
        if p.content == "fragment":
            fragments.append(used)
            reasons.append(f"This extension is based on a fragment of the code system {p.url}")
        elif getattr(p, "unclosed", False):
            reason = getattr(p, "unclosed_reason", None)
            reasons.append(reason or f"The code system {p.url} has a grammar and so has infinite members")
    return reasons, fragments
