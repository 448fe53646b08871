"""The state of one compose evaluation (registry, options, the import stack that finds cycles,
what was used, prepared include parts) and the selection rules every include applies
(activeOnly, compose.inactive, excludeNotForUI).
"""

from __future__ import annotations

from typing import Any

from terminology.errors import Issue, NotFound, Unprocessable
from terminology.providers.base import CodeSystemProvider, Concept, ConceptFilter
from terminology.providers.filters import current_deadline
from terminology.registry import Registry, split_canonical
from terminology.valuesets.options import ComposeOptions, status_warnings, vs_canonical
from terminology.valuesets.resolution import (
    check_version,
    choose_version,
    resolve_import,
    resolve_include_provider,
)
from terminology.valuesets.stream import Members

PreparedPart = tuple[CodeSystemProvider, "set[str] | None", list[ConceptFilter]]


class Evaluation:
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
        # include/exclude system parts prepared once (see prepared_part): tested per code
        self._parts: dict[tuple[int, str | None], tuple[dict[str, Any], PreparedPart]] = {}

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
        check_version(provider, self.options)
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
        vs = resolve_import(self.registry, ref, self.options)
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


def selectable(concept: Concept, ev: Evaluation) -> bool:
    """activeOnly (or compose.inactive = false) drops inactive concepts; excludeNotForUI
    drops abstract (notSelectable) ones."""
    options = ev.options
    if concept.inactive and (options.active_only or ev.compose_inactive() is False):
        return False
    return not (options.exclude_not_for_ui and concept.abstract)


def include_concept_codes(provider: CodeSystemProvider, include: dict[str, Any]) -> set[str] | None:
    """Codes an include enumerates (normalised for case), or None when it lists none."""
    if "concept" not in include:
        return None
    fold = not provider.case_sensitive
    return {(c.get("code", "").lower() if fold else c.get("code", "")) for c in include["concept"]}


def may_drop(ev: Evaluation) -> bool:
    """Whether selectable can refuse a concept here (activeOnly, inactive, notForUI)."""
    options = ev.options
    return options.active_only or options.exclude_not_for_ui or ev.compose_inactive() is False
