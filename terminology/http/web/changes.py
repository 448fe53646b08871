"""What the release pages show: the changes between two releases of a code system
(CodeSystem/$diff) and what the newest release changes in one order set (ValueSet/$diff)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from terminology.http.web.calls import FhirCall, operation, parameter
from terminology.registry import Registry

PAGE_SIZE = 100  # changes per page (within the CPT cap on descriptors per answer)


@dataclass
class ChangeRow:
    """One changed code as a page shows it."""

    kind: str  # added | deleted | revised | removed
    code: str
    display: str | None
    previous: str | None = None
    reason: str | None = None
    listed: bool = False

    @property
    def to_fix(self) -> bool:
        """A code the order set names that the new release deleted: its definition must change."""
        return self.kind == "removed" and self.reason == "deleted" and self.listed


@dataclass
class ChangeList:
    """One answer of a $diff operation: totals by kind and the rows of this page."""

    totals: dict[str, int] = field(default_factory=dict)
    total: int = 0
    rows: list[ChangeRow] = field(default_factory=list)

    def of(self, kind: str) -> list[ChangeRow]:
        """The rows of one kind."""
        return [r for r in self.rows if r.kind == kind]


def change_list(answer: dict[str, Any]) -> ChangeList:
    """A $diff answer (Parameters) as a ChangeList."""
    out = ChangeList(total=int(parameter(answer, "total") or 0))
    for p in answer.get("parameter", []):
        name = p.get("name", "")
        if name.startswith("total") and name != "total":
            out.totals[name[5:].lower()] = int(p.get("valueInteger", 0))
        elif "part" in p:
            parts = {q["name"]: next(v for k, v in q.items() if k.startswith("value"))
                     for q in p["part"]}
            out.rows.append(ChangeRow(name, parts["code"], parts.get("display"),
                                      parts.get("previous"), parts.get("reason"),
                                      bool(parts.get("listed"))))
    return out


def release_pairs(registry: Registry, system: str) -> list[tuple[str, str]]:
    """(older, newer) for each two consecutive loaded releases of a code system, newest first."""
    versions = [v for v in registry.code_system_versions(system) if v]
    return list(reversed(list(zip(versions, versions[1:], strict=False))))


def diff_call(system: str, before: str, after: str, text: str | None, offset: int,
              count: int) -> FhirCall:
    """The CodeSystem/$diff request for one page of a release pair's changes."""
    return operation("CodeSystem", "diff", ("system", system), ("from", before), ("to", after),
                     ("filter", text or None), ("offset", str(offset)), ("count", str(count)))


def newest_pair(registry: Registry, value_set: dict[str, Any]) -> tuple[str, str, str] | None:
    """(system, previous release, newest release) of the first code system the value set
    draws on that has two releases loaded; None when there is none."""
    includes = (value_set.get("compose") or {}).get("include", [])
    for system in dict.fromkeys(i.get("system") for i in includes if i.get("system")):
        pairs = release_pairs(registry, system)
        if pairs:
            return system, *pairs[0]
    return None


def value_set_diff_call(value_set: dict[str, Any], system: str, before: str,
                        after: str) -> FhirCall:
    """The ValueSet/$diff request for a loaded value set between two releases."""
    return operation("ValueSet", "diff", ("url", value_set.get("url")),
                     ("valueSetVersion", value_set.get("version")), ("system", system),
                     ("from", before), ("to", after))


def newest_pairs_json(registry: Registry, systems: list[str]) -> list[dict[str, str]]:
    """For the editor: each code system with two releases loaded, and its newest pair."""
    out = []
    for system in systems:
        pairs = release_pairs(registry, system)
        if pairs:
            out.append({"system": system, "from": pairs[0][0], "to": pairs[0][1]})
    return out
