"""Every member of a value set, in order: includes become runs of concepts (built into entries
only when shown), imports are intersected, excludes removed, code system versions merged
where versionsMatch, and the expansion records what it used and why it may not be closed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from terminology.errors import Issue, NotFound, TooCostly
from terminology.providers.base import CodeSystemProvider, Concept, ConceptFilter
from terminology.registry import Registry, version_key
from terminology.valuesets.entries import ExpansionEntry, make_entry, nest_entries, walk_contains
from terminology.valuesets.evaluation import Evaluation, may_drop, selectable
from terminology.valuesets.membership import include_selects, membership
from terminology.valuesets.options import ComposeOptions, too_costly, vs_canonical
from terminology.valuesets.resolution import HIERARCHY_OPS, compile_filters, filter_op
from terminology.valuesets.stream import ConceptRun, EntryRun, Members, Run


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


def _system_run(ev: Evaluation, include: dict[str, Any], where: str) -> ConceptRun:
    """The concepts the include's system part (all / concept list / filters) selects."""
    provider = ev.provider_for(include)
    if "concept" in include:
        return _listed_run(ev, provider, include["concept"])
    filters = compile_filters(provider, include, where)
    ops = [filter_op(f) for f in include.get("filter", [])]
    nestable = all(op in HIERARCHY_OPS for op in ops)
    ordered = getattr(provider, "ordered_concepts", None)
    drop = may_drop(ev)
    if not filters and ordered is not None and not drop:
        # the whole code system: its own ordered list, paged by position
        return ConceptRun(provider, ordered(), nestable=nestable, whole=True)
    candidates, tests = _candidates(provider, filters)
    if isinstance(candidates, list) and not tests and not drop:
        return ConceptRun(provider, candidates, nestable=nestable, filtered=bool(filters))
    chosen = []
    for concept in candidates:
        ev.tick()
        if (not drop or selectable(concept, ev)) and all(f.matches(concept) for f in tests):
            chosen.append(concept)
    return ConceptRun(provider, chosen, nestable=nestable, filtered=bool(filters))


def _listed_run(ev: Evaluation, provider: CodeSystemProvider,
                listed: list[dict[str, Any]]) -> ConceptRun:
    """The concepts an include lists (known and selectable ones, each once), with the
    compose concepts that may give them a display, designations and extensions."""
    concepts: list[Concept] = []
    raws: list[dict[str, Any]] = []
    seen: set[str] = set()
    for raw in listed:
        ev.tick()
        concept = provider.locate(raw.get("code", ""))
        if concept is not None and concept.code not in seen and selectable(concept, ev):
            seen.add(concept.code)
            concepts.append(concept)
            raws.append(raw)
    return ConceptRun(provider, concepts, vs_concepts=raws)


def _imported_entries(ev: Evaluation, include: dict[str, Any]) -> list[ExpansionEntry]:
    """Members of an include without a system: its imported value sets intersected."""
    imports = [ev.import_value_set(ref) for ref in include.get("valueSet", [])]
    if not imports:
        return []
    first, rest = imports[0], imports[1:]
    # members taken from another value set are listed flat
    return [ExpansionEntry(e.system, e.version, e.code, e.display, e.concept, e.provider,
                           e.abstract, e.inactive, e.designations, [], False, False, e.extensions)
            for e in _expand_vs(ev, first)
            if all(membership(ev, vs, e.system, e.code, e.version).found for vs in rest)]


def _include_run(ev: Evaluation, include: dict[str, Any], where: str) -> Run:
    """The members an include selects, as a run (entries are built only when shown)."""
    if not include.get("system"):
        return EntryRun(_imported_entries(ev, include))
    imports = [ev.import_value_set(ref) for ref in include.get("valueSet", [])]
    run = _system_run(ev, include, where)
    if not imports:
        return run
    url, version = run.provider.url, run.provider.version
    return run.keep(lambda _, c: all(membership(ev, vs, url, c.code, version).found
                                     for vs in imports))


def _expand_vs(ev: Evaluation, value_set: dict[str, Any]) -> Members:
    """The flat members of a value set (imports are expanded once per evaluation)."""
    key = vs_canonical(value_set)
    if key in ev._expanded and key not in ev.stack:
        return ev._expanded[key]
    ev.enter(value_set)
    try:
        compose = value_set.get("compose")
        if compose is None:
            out = Members([EntryRun(_entries_from_expansion(ev, value_set))], make_entry)
        else:
            out = _expand_compose_members(ev, compose)
    finally:
        ev.leave()
    ev._expanded[key] = out
    return out


def _expand_compose_members(ev: Evaluation, compose: dict[str, Any]) -> Members:
    excludes = compose.get("exclude", [])
    merge = _versions_match(compose, ev.options)
    if len(ev.stack) == 1:
        ev.versions_match = merge
    # Without excludes the top-level count only grows: stop as soon as it passes the limit.
    limit = ev.max_size if len(ev.stack) == 1 and not excludes else None
    runs: list[Run] = []
    for i, include in _newest_version_first(compose.get("include", [])):
        runs.append(_include_run(ev, include, f"ValueSet.compose.include[{i}]"))
        so_far = Members(runs, make_entry)
        if limit is not None and not so_far.may_repeat(merge) and len(so_far) > limit:
            raise TooCostly("")  # replaced with the value set's message by expand_compose
    for exclude in excludes:
        _note_excluded_system(ev, exclude)
    members = Members(runs, make_entry)
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


def _note_excluded_system(ev: Evaluation, exclude: dict[str, Any]) -> None:
    """An exclude's code system is used by the expansion too (used-codesystem)."""
    if not exclude.get("system"):
        return
    with contextlib.suppress(NotFound):  # an exclude of an unknown code system removes nothing
        ev.provider_for(exclude)


def _excluded_code(ev: Evaluation, excludes: list[dict[str, Any]], system: str,
                   version: str | None, code: str, merge: bool = False) -> bool:
    """Whether an exclude of the compose removes system|code (version)."""
    for i, exclude in enumerate(excludes):
        if (not merge and exclude.get("system") and exclude.get("version")
                and exclude.get("version") != version):
            continue
        if include_selects(ev, exclude, f"ValueSet.compose.exclude[{i}]", system, code,
                            version if not exclude.get("version") else exclude.get("version")):
            return True
    return False


def _entries_from_expansion(ev: Evaluation, value_set: dict[str, Any]) -> list[ExpansionEntry]:
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


def expand_compose(
    registry: Registry, value_set: dict[str, Any], options: ComposeOptions, *,
    max_size: int | None = None,
) -> Expansion:
    """Every member of the value set, flat and in order; TooCostly past max_size members."""
    ev = Evaluation(registry, options, "expanded")
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


def _unclosed(ev: Evaluation) -> tuple[list[str], list[str]]:
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
