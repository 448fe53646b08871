"""What the value set page shows: the compose as readable rules and one page of expansion."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from terminology.http.web.calls import FhirCall, operation
from terminology.registry import Registry
from terminology.valuesets.compose import filter_op

PAGE_SIZE = 20
MAX_PAGE_SIZE = 500


@dataclass
class ComposeRule:
    """One include or exclude, in words: a system (+version), listed concepts, filters and
    imported value sets (all intersected, as R4 ValueSet.compose defines)."""

    kind: str  # include | exclude
    system: str | None
    version: str | None
    concepts: list[tuple[str, str | None]] = field(default_factory=list)
    filters: list[str] = field(default_factory=list)
    value_sets: list[str] = field(default_factory=list)


def compose_rules(registry: Registry, value_set: dict[str, Any]) -> list[ComposeRule]:
    """The compose's includes then excludes as ComposeRules."""
    compose = value_set.get("compose") or {}
    rules = []
    for kind in ("include", "exclude"):
        for part in compose.get(kind, []):
            provider = registry.code_system(part["system"], part.get("version")) if part.get("system") else None
            concepts = []
            for c in part.get("concept", []):
                found = provider.locate(c.get("code", "")) if provider else None
                concepts.append((c.get("code", ""), c.get("display") or (found.display if found else None)))
            filters = [f"{f.get('property')} {filter_op(f) or f.get('op')} {f.get('value')}"
                       for f in part.get("filter", [])]
            rules.append(ComposeRule(kind, part.get("system"), part.get("version"), concepts, filters,
                                     list(part.get("valueSet", []))))
    return rules


def expand_call(value_set: dict[str, Any], text: str | None, offset: int, count: int) -> FhirCall:
    """The paged $expand request for one page of the value set."""
    return operation("ValueSet", "expand", ("url", value_set.get("url")),
                     ("valueSetVersion", value_set.get("version")), ("filter", text or None),
                     ("offset", str(offset)), ("count", str(count)))


@dataclass
class Pager:
    """Where a page of `total` entries starts and ends, and the neighbouring offsets."""

    offset: int
    count: int
    total: int

    @property
    def first(self) -> int:
        """1-based number of the first entry shown (0 when nothing is shown)."""
        return min(self.offset + 1, self.total) if self.total else 0

    @property
    def last(self) -> int:
        """1-based number of the last entry shown."""
        return min(self.offset + self.count, self.total)

    @property
    def previous(self) -> int | None:
        """The offset of the previous page, None on the first."""
        return max(self.offset - self.count, 0) if self.offset > 0 else None

    @property
    def next(self) -> int | None:
        """The offset of the next page, None on the last."""
        return self.offset + self.count if self.offset + self.count < self.total else None


def flatten(contains: list[dict[str, Any]], depth: int = 0) -> list[tuple[int, dict[str, Any]]]:
    """Expansion entries with their nesting depth, parents first."""
    out = []
    for item in contains:
        out.append((depth, item))
        out.extend(flatten(item.get("contains", []), depth + 1))
    return out
