"""How the memberships of two composes relate, decided from the definitions alone.

Used by ValueSet/$compare (terminology/operations/compare.py) before it falls back to
expanding. The includes of both composes are grouped by code system (and by version, where
the version matters) and each group is compared on its own: code systems hold disjoint codes,
so the groups' findings add up. A group is decided only where the answer is certain:

* a code system only one side includes: that side has codes the other lacks;
* the whole code system on both sides: the same codes;
* code lists on both sides (several lists of a system are one list): compared as sets, once
  a complete code system is known to define every listed code (codes of a code system not
  known here are taken as listed);
* one filter set on each side: the same filters select the same codes; `is-a A` against
  `is-a B` relate as A and B do (`subsumes` gives a strict superset, since B's closure
  lacks A); two unrelated concepts have disjoint closures when no concept has two parents;
* several includes on each side that are identical once put in order: the same codes.

Anything else (excludes, imports, a list mixed with filters in one include, a whole system
against part of it, different versions of a code system whose version matters, a compose
that keeps inactive codes out of listed codes) leaves the group undecided, and the caller
expands.

Versions (the HL7 Tooling IG's ValueSet Comparison page, policy `as-needed`): the versions of
a code system are interchangeable (a code is the same member whichever version lists it,
and "all of code system X" is the same set in every version) unless the code system says
`versionNeeded` or a filter on it is in play (a filter can select different codes in
different versions). `always` makes versions matter everywhere, `never` nowhere. This is why
HL7's case related-ver-all-diff-cs-version (all of cs1 1.0.0 against all of cs1 2.0.0) is
`same` without an expansion, while related-ver-same-def-diff-cs-version (is-a A in each) is
decided by expanding.

Diagnostic code lists come only from code lists compared as sets, and, as tx.fhir.org
reports them, from one code system: when several systems are compared as lists, the lists
shown are the last one's (HL7 case related-ov-cross-system expects exactly that). Codes are
listed in sorted order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from terminology.errors import FhirError
from terminology.providers.base import CodeSystemProvider
from terminology.registry import Registry
from terminology.valuesets.resolution import filter_op

POLICIES = ("as-needed", "always", "never")


@dataclass
class Tally:
    """What is known about two memberships: shared codes, codes only in this (left), codes
    only in other (right); `undecided` says why the definitions could not settle it."""

    common: bool = False
    left: bool = False
    right: bool = False
    undecided: str | None = None
    common_codes: list[str] = field(default_factory=list)
    missing_codes: list[str] = field(default_factory=list)  # in this, not in other
    extra_codes: list[str] = field(default_factory=list)  # in other, not in this

    def add(self, common: bool = False, left: bool = False, right: bool = False) -> None:
        self.common |= common
        self.left |= left
        self.right |= right


@dataclass
class Group:
    """The includes of one code system (version) on each side."""

    system: str
    provider: CodeSystemProvider | None
    this: list[dict[str, Any]] = field(default_factory=list)
    other: list[dict[str, Any]] = field(default_factory=list)


def version_matters(policy: str, provider: CodeSystemProvider | None, filtered: bool) -> bool:
    """Whether a code system's version separates its codes (see the module docstring)."""
    if policy == "never" or provider is None:
        return False
    if policy == "always":
        return True
    return bool(provider.resource.get("versionNeeded")) or filtered


def compare_definitions(registry: Registry, this: dict[str, Any], other: dict[str, Any],
                        policy: str = "as-needed") -> Tally:
    """The relation of two composes where their definitions settle it (see module docstring)."""
    tally = Tally()
    reason = _uncomparable(this, other)
    if reason is not None:
        tally.undecided = reason
        return tally
    groups = _groups(registry, this, other, policy)
    if isinstance(groups, str):
        tally.undecided = groups
        return tally
    for group in groups:
        _compare_group(group, tally, lists_exact=this.get("inactive") is not False)
        if tally.undecided is not None:
            break
    return tally


def _uncomparable(this: dict[str, Any], other: dict[str, Any]) -> str | None:
    """Why two composes cannot be compared include by include, or None."""
    if this.get("exclude") or other.get("exclude"):
        return "excludes"
    if this.get("lockedDate") or other.get("lockedDate"):
        return "a locked date"
    if this.get("inactive") != other.get("inactive"):
        return "different rules for inactive codes"
    for inc in [*this.get("include", []), *other.get("include", [])]:
        if inc.get("valueSet") or not inc.get("system"):
            return "value set imports"
        if inc.get("concept") and inc.get("filter"):
            return "an include with both codes and filters"
    return None


def _groups(registry: Registry, this: dict[str, Any], other: dict[str, Any],
            policy: str) -> list[Group] | str:
    """The includes grouped by system (system|version where the version matters); a reason
    string when a system whose version matters is used in two versions."""
    sides = (("this", this.get("include", [])), ("other", other.get("include", [])))
    filtered = {inc["system"] for _, incs in sides for inc in incs if inc.get("filter")}
    groups: dict[tuple[str, str | None], Group] = {}
    for side, includes in sides:
        for inc in includes:
            system = inc["system"]
            provider = registry.code_system(system, inc.get("version"))
            version = provider.version if provider is not None else None
            if not version_matters(policy, provider, system in filtered):
                version = None
            key = (system, version)
            if key not in groups:
                groups[key] = Group(system, provider)
            getattr(groups[key], side).append(inc)
    systems = [system for system, version in groups if version is not None]
    if len(systems) != len(set(systems)):
        return "different versions of a code system whose version matters"
    return list(groups.values())


def _compare_group(group: Group, tally: Tally, lists_exact: bool) -> None:
    """Add one code system's finding to `tally` (or mark it undecided)."""
    this, other = _tidy(group.this), _tidy(group.other)
    if not this or not other:
        only = this or other
        if not _surely_has_codes(only, group.provider):
            tally.undecided = f"whether the includes of {group.system} select any code"
        else:
            tally.add(left=bool(this), right=bool(other))
        return
    if len(this) > 1 or len(other) > 1:
        if this != other:
            tally.undecided = f"several different includes of {group.system}"
        else:
            tally.add(common=True)
        return
    t, o = this[0], other[0]
    if _kind(t) == _kind(o) == "all":
        tally.add(common=True)
    elif _kind(t) == _kind(o) == "codes" and (lists_exact or t == o) and _all_known(group.provider, t, o):
        _compare_lists(t, o, tally)
    elif _kind(t) == _kind(o) == "filters":
        _compare_filters(t, o, group.provider, tally)
    else:
        tally.undecided = f"includes of {group.system} that only an expansion can compare"


def _kind(inc: dict[str, Any]) -> str:
    """filters, codes (a list, even an empty one) or all (the whole code system)."""
    if inc.get("filter"):
        return "filters"
    return "codes" if "concept" in inc else "all"


def _sort_key(text: str) -> tuple[str, str]:
    return text.casefold(), text


def _tidy(includes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The includes of one system in a canonical form: the code lists as one sorted list,
    each filter set sorted, whole-system first, then the list, then filters."""
    codes: set[str] = set()
    out: list[dict[str, Any]] = []
    whole = listed = False
    for inc in includes:
        if inc.get("filter"):
            filters = sorted((str(f.get("property")), str(filter_op(f)), str(f.get("value")))
                             for f in inc["filter"])
            out.append({"filter": filters})
        elif "concept" in inc:
            listed = True
            codes.update(str(c.get("code")) for c in inc["concept"])
        else:
            whole = True
    out.sort(key=lambda inc: inc["filter"])
    if listed:
        out.insert(0, {"concept": sorted(codes, key=_sort_key)})
    if whole:
        out.insert(0, {})
    return out


def _surely_has_codes(includes: list[dict[str, Any]], provider: CodeSystemProvider | None) -> bool:
    """Whether one side's includes of a system select at least one code: a code list does (as
    listed), a whole code system does unless it is known to be empty, an is-a filter on a
    known concept does (the concept itself)."""
    for inc in includes:
        kind = _kind(inc)
        if kind == "codes" and inc["concept"]:
            return True
        if kind == "all":
            return provider is None or provider.total() > 0
        if (provider is not None and len(inc["filter"]) == 1 and inc["filter"][0][:2] == ("concept", "is-a")
                and provider.locate(inc["filter"][0][2]) is not None):
            return True
    return False


def _all_known(provider: CodeSystemProvider | None, *lists: dict[str, Any]) -> bool:
    """Whether listed codes can be taken as listed: the code system is complete and has each
    of them (a code it lacks is no member; the expansion decides), or it is not known here, or
    it is a fragment (which need not hold every code)."""
    if provider is None or provider.content != "complete":
        return True
    return all(provider.locate(code) is not None for inc in lists for code in inc["concept"])


def _compare_lists(t: dict[str, Any], o: dict[str, Any], tally: Tally) -> None:
    """Two code lists as sets; the diagnostic lists are replaced by this system's."""
    mine, theirs = t["concept"], o["concept"]
    theirs_set, mine_set = set(theirs), set(mine)
    tally.common_codes = [c for c in mine if c in theirs_set]
    tally.missing_codes = [c for c in mine if c not in theirs_set]
    tally.extra_codes = [c for c in theirs if c not in mine_set]
    tally.add(common=bool(tally.common_codes), left=bool(tally.missing_codes),
              right=bool(tally.extra_codes))


def _compare_filters(t: dict[str, Any], o: dict[str, Any], provider: CodeSystemProvider | None,
                     tally: Tally) -> None:
    """Two filter sets of one code system (version)."""
    if t["filter"] == o["filter"]:
        tally.add(common=True)
        return
    if len(t["filter"]) == len(o["filter"]) == 1 and provider is not None:
        (tp, top, tv), (op_, oop, ov) = t["filter"][0], o["filter"][0]
        if tp == op_ == "concept" and top == oop == "is-a" and _compare_is_a(provider, tv, ov, tally):
            return
    tally.undecided = "filters that cannot be compared without expanding"


def _compare_is_a(provider: CodeSystemProvider, a: str, b: str, tally: Tally) -> bool:
    """is-a a (this) against is-a b (other); False when it cannot be told."""
    if provider.locate(a) is None or provider.locate(b) is None:
        return False
    if provider.subsumes(a, b):
        tally.add(common=True, left=True)
    elif provider.subsumes(b, a):
        tally.add(common=True, right=True)
    elif _single_parented(provider):
        tally.add(left=True, right=True)
    else:
        return False
    return True


def _single_parented(provider: CodeSystemProvider) -> bool:
    """Whether no concept of the code system has two parents (closures of unrelated concepts
    are then disjoint)."""
    return all(len(c.parents) <= 1 for c in provider.iterate())


def admits_grammar_members(registry: Registry, compose: dict[str, Any]) -> bool:
    """Whether a compose may hold members that no expansion lists: expressions of a code
    system with a grammar (CPT's modifier expressions), which only a whole-system include or
    filters that are all open to expressions (CPT's `modified = true`) pick up. A code list
    holds what it lists, and any other filter selects the code system's own codes. Imported
    value sets are assumed to admit them."""
    for inc in compose.get("include", []):
        if inc.get("valueSet") or not inc.get("system"):
            return True
        provider = registry.code_system(inc["system"], inc.get("version"))
        if provider is None or not getattr(provider, "unclosed", False):
            continue
        filters = inc.get("filter") or []
        if not filters:
            if "concept" in inc:
                continue
            return True
        try:
            compiled = [provider.filter(str(f.get("property")), str(filter_op(f)), str(f.get("value")))
                        for f in filters]
        except FhirError:
            return True
        if all(getattr(f, "open_to_expressions", False) for f in compiled):
            return True
    return False
