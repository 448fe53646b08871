"""CodeSystem/$diff (an operation of this server): what one release of a code system changes
against another, for CPT's yearly releases above all.

    GET /fhir/CodeSystem/$diff?system=http://www.ama-assn.org/go/cpt&from=2025&to=2026

answers a Parameters resource: `system`, `from`, `to`, the totals (`total`, `totalAdded`,
`totalDeleted`, `totalRevised`), `offset` when paged, then one parameter per change in the
order added, deleted, revised, each by code:

* `added`   parts `code` (valueCode), `display` (the new release's);
* `deleted` parts `code`, `display` (its last descriptor, in `from`);
* `revised` parts `code`, `display` (the new one), `previous` (the old one).

`count`/`offset` page the changes as they page an expansion. Displays are licensed text for
CPT: no one answer lists more than `max_cpt_expansion` changes of CPT (too-costly, as for
$expand; a client pages with a smaller count), and no unpaged answer lists more than
`max_expansion_size`. Unlike $expand's window, paging may go past the cap: a year's changes
are about 1 % of the codes, and a client that follows them must be able to read them all.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from terminology.cpt import CPT_URL
from terminology.errors import BadRequest, TooCostly
from terminology.operations.context import OperationContext
from terminology.operations.lookup import resolve_code_system
from terminology.params import ParamBag
from terminology.providers.base import CodeSystemProvider
from terminology.settings import Settings

KINDS = ("added", "deleted", "revised")
# (id(old), id(new)) -> (old, new, diff): holding the providers keeps their ids unique
_MEMO: OrderedDict[tuple[int, int], tuple[Any, Any, ReleaseDiff]] = OrderedDict()
_MEMO_SIZE = 16
_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class Change:
    """One changed code: kind (added | deleted | revised | removed), its display, the
    previous display of a revised code, why a removed code left a value set, and whether
    a value set names it in an include (a code to fix when it is deleted)."""

    kind: str
    code: str
    display: str | None
    previous: str | None = None
    reason: str | None = None
    listed: bool | None = None

    def parameter(self) -> dict[str, Any]:
        """The change as one Parameters.parameter with parts."""
        parts: list[dict[str, Any]] = [{"name": "code", "valueCode": self.code}]
        if self.display is not None:
            parts.append({"name": "display", "valueString": self.display})
        if self.previous is not None:
            parts.append({"name": "previous", "valueString": self.previous})
        if self.reason is not None:
            parts.append({"name": "reason", "valueCode": self.reason})
        if self.listed is not None:
            parts.append({"name": "listed", "valueBoolean": self.listed})
        return {"name": self.kind, "part": parts}


@dataclass(slots=True)
class ReleaseDiff:
    """The changes between two releases (or two expansions), by kind, each sorted by code."""

    changes: dict[str, list[Change]] = field(default_factory=dict)

    def all(self) -> list[Change]:
        """Every change, in the order the answer lists them."""
        return [c for kind in self.changes for c in self.changes[kind]]

    def total(self) -> int:
        """How many changes there are."""
        return sum(len(v) for v in self.changes.values())

    def search(self, text: str | None) -> ReleaseDiff:
        """The changes whose code or display (old or new) contains `text` (case-insensitive)."""
        if not text:
            return self
        low = text.lower()

        def hit(c: Change) -> bool:
            return any(low in (s or "").lower() for s in (c.code, c.display, c.previous))
        return ReleaseDiff({k: [c for c in v if hit(c)] for k, v in self.changes.items()})


def release_diff(old: CodeSystemProvider, new: CodeSystemProvider) -> ReleaseDiff:
    """Codes added, deleted and revised (display changed) from `old` to `new` (remembered
    for the last few pairs: providers never change once loaded)."""
    key = (id(old), id(new))
    with _LOCK:
        found = _MEMO.get(key)
    if found is not None:
        return found[2]
    added: list[Change] = []
    revised: list[Change] = []
    for concept in new.iterate():
        before = old.locate(concept.code)
        if before is None:
            added.append(Change("added", concept.code, concept.display))
        elif before is not concept and before.display != concept.display:
            revised.append(Change("revised", concept.code, concept.display, before.display))
    deleted = [Change("deleted", c.code, c.display) for c in old.iterate()
               if new.locate(c.code) is None]
    diff = ReleaseDiff({k: sorted(v, key=lambda c: c.code)
                        for k, v in zip(KINDS, (added, deleted, revised), strict=True)})
    with _LOCK:
        _MEMO[key] = (old, new, diff)
        while len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)
    return diff


def page_parameters(diff: ReleaseDiff, head: list[dict[str, Any]], bag: ParamBag,
                    settings: Settings, licensed: bool, what: str) -> dict[str, Any]:
    """The Parameters answer: `head`, the totals, then the page of changes `count`/`offset`
    ask for; too-costly past the CPT cap (licensed text) or the expansion limit."""
    count, offset = bag.integer("count"), bag.integer("offset") or 0
    paged = count is not None or bag.has("offset")
    total = diff.total()
    end = min(total, offset + (total if count is None else count)) if paged else total
    shown = max(0, end - offset)
    if licensed and shown > settings.max_cpt_expansion:
        raise TooCostly(
            f"The {what} would list {shown} CPT descriptors in one answer; this server hands "
            f"out at most {settings.max_cpt_expansion} (setting max_cpt_expansion): page it "
            "with count and offset")
    if not paged and total > settings.max_expansion_size:
        raise TooCostly(f"The {what} has {total} changes, more than this server lists in one "
                        f"answer ({settings.max_expansion_size}): page it with count and offset")
    params = list(head)
    params.append({"name": "total", "valueInteger": total})
    for kind, changes in diff.changes.items():
        params.append({"name": "total" + kind.capitalize(), "valueInteger": len(changes)})
    if paged:
        params.append({"name": "offset", "valueInteger": offset})
    params.extend(c.parameter() for c in diff.all()[offset:end])
    return {"resourceType": "Parameters", "parameter": params}


def required_text(bag: ParamBag, name: str, operation: str) -> str:
    """A parameter the operation cannot do without; a 400 naming it when it is missing."""
    value = bag.text(name)
    if not value:
        raise BadRequest(f"{operation} needs the parameter '{name}'", expression=name)
    return value


def handle_cs_diff(ctx: OperationContext) -> dict[str, Any]:
    """CodeSystem/$diff: the codes added, deleted and revised from release `from` to `to`."""
    bag = ctx.bag
    system = bag.text("system") or (ctx.instance or {}).get("url")
    if not system:
        raise BadRequest("CodeSystem/$diff needs the parameter 'system'", expression="system")
    before = resolve_code_system(ctx.registry, system, required_text(bag, "from", "$diff"))
    after = resolve_code_system(ctx.registry, system, required_text(bag, "to", "$diff"))
    diff = release_diff(before, after).search(bag.text("filter"))
    head = [{"name": "system", "valueUri": after.url},
            {"name": "from", "valueString": before.version or "(none)"},
            {"name": "to", "valueString": after.version or "(none)"}]
    return page_parameters(diff, head, bag, ctx.settings, after.url == CPT_URL,
                           f"comparison of '{after.url}' versions {before.version} and "
                           f"{after.version}")
