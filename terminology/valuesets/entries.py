"""Expansion entries (a `contains` item before rendering) and their nesting into a hierarchy.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from terminology.providers.base import CodeSystemProvider, Concept, Designation


def walk_contains(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every item of an expansion's contains, nested ones after their parent."""
    for item in items:
        yield item
        yield from walk_contains(item.get("contains", []))


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


def make_entry(provider: CodeSystemProvider, concept: Concept, nestable: bool,
           vs_concept: dict[str, Any] | None = None, filtered: bool = False) -> ExpansionEntry:
    display = concept.display
    designations: list[Designation] = []
    if vs_concept is not None:
        display = vs_concept.get("display") or display
        designations = [Designation.from_fhir(d) for d in vs_concept.get("designation", [])]
    return ExpansionEntry(provider.url, provider.version, concept.code, display, concept, provider,
                          concept.abstract, concept.inactive, designations, [], nestable, filtered,
                          list(vs_concept.get("extension", [])) if vs_concept else [])
