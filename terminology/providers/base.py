"""The CodeSystemProvider boundary.

Operations never know whether a code system is a FHIR CodeSystem resource held in memory, a
SQLite database or a grammar: they ask a provider. "Not found" is a value (`None` from
`locate`), not an exception. Concepts are plain slotted objects, built once at load time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(slots=True)
class Designation:
    """A designation: language (may be None), use Coding dict (may be None), value, and the
    designation's own extensions (e.g. coding-sctdescid)."""

    language: str | None
    use: dict[str, Any] | None
    value: str
    extensions: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_fhir(cls, raw: dict[str, Any]) -> Designation:
        """A designation from its FHIR JSON (CodeSystem.concept or ValueSet compose concept)."""
        return cls(raw.get("language"), raw.get("use"), raw.get("value", ""),
                   list(raw.get("extension", [])))


@dataclass(slots=True)
class Prop:
    """A concept property value: `value_type` is the FHIR value[x] suffix (Code, Boolean, ...)."""

    code: str
    value_type: str
    value: Any

    def to_part_value(self) -> tuple[str, Any]:
        """The ('valueX', value) pair as it appears in Parameters and expansions."""
        return "value" + self.value_type, self.value


@dataclass(slots=True)
class Concept:
    """A code system concept with everything the operations read, precomputed at load."""

    code: str
    display: str | None = None
    definition: str | None = None
    designations: list[Designation] = field(default_factory=list)
    properties: list[Prop] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    abstract: bool = False  # notSelectable
    inactive: bool = False
    status: str | None = None  # concept status property (retired, deprecated, ...)
    extensions: list[dict[str, Any]] = field(default_factory=list)

    def property_values(self, code: str) -> list[Any]:
        """Values of the property `code` on this concept."""
        return [p.value for p in self.properties if p.code == code]


class ConceptFilter(Protocol):
    """A compiled compose filter: tests one concept, or lists the matching codes."""

    def matches(self, concept: Concept) -> bool:
        """Whether the concept satisfies the filter."""
        ...

    def codes(self) -> Iterable[str] | None:
        """The matching codes when cheaper to list than to test each concept; else None."""
        ...


@runtime_checkable
class CodeSystemProvider(Protocol):
    """What every kind of code system offers the operations."""

    url: str
    version: str | None
    name: str | None
    title: str | None
    content: str  # complete | fragment | example | not-present | supplement
    case_sensitive: bool
    hierarchical: bool
    resource: dict[str, Any]  # the CodeSystem metadata (no concepts needed)
    language: str | None

    def locate(self, code: str) -> Concept | None:
        """The concept for `code`, or None when the code system has no such code."""
        ...

    def iterate(self) -> Iterator[Concept]:
        """Every concept, parents before children, in the code system's order."""
        ...

    def roots(self) -> list[Concept]:
        """Top-level concepts (all concepts for a flat code system)."""
        ...

    def total(self) -> int:
        """How many concepts the code system holds."""
        ...

    def subsumes(self, ancestor: str, descendant: str) -> bool:
        """Whether `descendant` is `ancestor` or lies below it in the hierarchy."""
        ...

    def filter(self, prop: str, op: str, value: str) -> ConceptFilter:
        """Compile a compose filter; raises FhirError for an unsupported filter."""
        ...

    def property_definitions(self) -> list[dict[str, Any]]:
        """CodeSystem.property entries (code, uri, type, description)."""
        ...
