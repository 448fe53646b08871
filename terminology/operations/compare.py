"""ValueSet/$compare: how the memberships of two value sets relate (HL7 FHIR Tooling
Extensions IG, OperationDefinition ValueSet-compare; tx.fhir.org's earlier `$related`).

In: `thisValueSet` or `thisUrl` (at the instance level the instance is 'this'), `otherValueSet`
or `otherUrl`; a url may carry `|version`, or the version comes as `thisVersion` /
`otherVersion` (or `valueSetVersion`, for both, as tx.fhir.org reads it); `version-policy`
(as-needed, always, never); `diagnostics`; `tx-resource`.

Out: `result`, stated from this' side: same, subset (every code of this is in other, which
has more), superset, overlapping, disjoint (no shared code), empty (both empty) or
indeterminate (with the reason in `message`); `performed-expansion`; with `diagnostics`,
`missing-codes` (in this, not in other), `extra-codes` (in other, not in this) and
`common-codes`, comma-separated.

The definitions are compared first (terminology/valuesets/relation.py: cheap, exact, no
expansion). Where they cannot settle it, both value sets are expanded (bounded by
max_expansion_size) and the codes compared; an expansion that fails (an unknown code system,
too many codes) or is not closed (a fragment, a grammar) gives `indeterminate`, never a guess.

Rules behind HL7's cases (suites `compare` and `related2`, tx.fhir.org mode):
* a value set compared with itself is `same` without expanding (identical definitions);
* codes of an expansion are the same member whatever code system version they come from,
  unless the code system says versionNeeded (or version-policy=always);
* after expanding, `common-codes` is listed only when the sets differ, and the lists follow
  each expansion's order (missing and common: this' order; extra: other's);
* the value sets are named url|version in messages (url alone when they have no version).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from terminology.errors import BadRequest, FhirError
from terminology.operations.context import OperationContext
from terminology.params import ParamBag
from terminology.providers.filters import Deadline
from terminology.registry import Registry, split_canonical
from terminology.settings import Settings
from terminology.valuesets.compose import (
    ComposeOptions,
    expand_compose,
    resolve_value_set,
    vs_canonical,
)
from terminology.valuesets.expansion import Expansion
from terminology.valuesets.relation import (
    POLICIES,
    Tally,
    admits_grammar_members,
    compare_definitions,
)


@dataclass
class CompareRequest:
    """$compare inputs, the two value sets already resolved."""

    this: dict[str, Any]
    other: dict[str, Any]
    diagnostics: bool = False
    policy: str = "as-needed"


def _value_set(registry: Registry, bag: ParamBag, side: str) -> dict[str, Any]:
    """'this' or 'other': inline ({side}ValueSet) or by canonical ({side}Url [+ version])."""
    inline = bag.resource(f"{side}ValueSet")
    url = bag.text(f"{side}Url")
    if inline is not None and url is not None:
        raise BadRequest(f"Use either '{side}ValueSet' or '{side}Url', not both", expression=f"{side}Url")
    if inline is not None:
        if inline.get("resourceType") != "ValueSet":
            raise BadRequest(f"The parameter '{side}ValueSet' must carry a ValueSet",
                             expression=f"{side}ValueSet")
        return inline
    if url is None:  # (compare_request checked that one of the two was sent)
        raise BadRequest(f"'{side}ValueSet' must carry a resource", expression=f"{side}ValueSet")
    version = bag.text(f"{side}Version") or split_canonical(url)[1] or bag.text("valueSetVersion")
    return resolve_value_set(registry, url, version)


def compare_request(registry: Registry, bag: ParamBag,
                    instance: dict[str, Any] | None = None) -> CompareRequest:
    """Parse and resolve $compare's parameters (400/404 for a bad or unknown value set)."""
    if instance is not None and (bag.has("thisValueSet") or bag.has("thisUrl")):
        raise BadRequest("At the instance level the instance is 'this': send only 'other'",
                         expression="thisUrl")
    for side in ("other",) if instance is not None else ("this", "other"):
        if not (bag.has(f"{side}ValueSet") or bag.has(f"{side}Url")):
            raise BadRequest(f"$compare needs '{side}ValueSet' or '{side}Url'", expression=f"{side}Url")
    this = instance if instance is not None else _value_set(registry, bag, "this")
    other = _value_set(registry, bag, "other")
    policy = bag.text("version-policy") or "as-needed"
    if policy not in POLICIES:
        raise BadRequest(f"version-policy must be one of {', '.join(POLICIES)}, not '{policy}'",
                         expression="version-policy")
    return CompareRequest(this, other, bool(bag.boolean("diagnostics")), policy)


def _expand(registry: Registry, value_set: dict[str, Any], options: ComposeOptions,
            limit: int) -> Expansion | str:
    """The expansion of one side, or why it could not be had."""
    try:
        return expand_compose(registry, value_set, options, max_size=limit)
    except FhirError as e:
        return e.text


def _open(registry: Registry, expansion: Expansion, value_set: dict[str, Any]) -> bool:
    """Whether an expansion may lack members: a fragment code system was used, or a grammar's
    expressions may be members (relation.admits_grammar_members). An expansion unclosed only
    because a code system has a grammar that this compose cannot reach is complete."""
    if not expansion.unclosed:
        return False
    return bool(expansion.fragments) or admits_grammar_members(registry, value_set.get("compose") or {})


def _expansion_failure(this: Expansion | str, other: Expansion | str,
                       open_: tuple[bool, bool]) -> str | None:
    """Why the expansions cannot be compared (failed or not closed), or None."""
    if isinstance(this, str) and isinstance(other, str):
        if this == other:
            return f"Both expansions failed: {this}"
        return f"Both expansions failed with different errors: {this}; {other}"
    if isinstance(this, str):
        return f"This expansion failed: {this}"
    if isinstance(other, str):
        return f"Other expansion failed: {other}"
    if open_[0] and open_[1]:
        return "Both expansions are unclosed."
    if open_[0] or open_[1]:
        return "This expansion is unclosed." if open_[0] else "Other expansion is unclosed."
    return None


def _keys(registry: Registry, expansion: Expansion, policy: str) -> dict[tuple[str, str | None, str], str]:
    """Each member's identity -> its code, in order; the version is part of the identity only
    where it matters (versionNeeded, or version-policy=always)."""
    out: dict[tuple[str, str | None, str], str] = {}
    needed: dict[str, bool] = {}
    for e in expansion.entries:
        if e.system not in needed:
            provider = registry.code_system(e.system, e.version)
            needed[e.system] = policy == "always" or (
                policy == "as-needed" and provider is not None
                and bool(provider.resource.get("versionNeeded")))
        out.setdefault((e.system, e.version if needed[e.system] else None, e.code), e.code)
    return out


def compare_expansions(registry: Registry, request: CompareRequest, settings: Settings,
                       limit: int) -> Tally:
    """The relation of the two expansions' codes."""
    tally = Tally()
    # one time budget for both expansions
    options = ComposeOptions(deadline=Deadline(settings.request_time_limit, settings.max_regex_length))
    this = _expand(registry, request.this, options, limit)
    other = _expand(registry, request.other, options, limit)
    open_ = (not isinstance(this, str) and _open(registry, this, request.this),
             not isinstance(other, str) and _open(registry, other, request.other))
    failure = _expansion_failure(this, other, open_)
    if failure is not None or isinstance(this, str) or isinstance(other, str):
        tally.undecided = failure
        return tally
    mine, theirs = _keys(registry, this, request.policy), _keys(registry, other, request.policy)
    tally.missing_codes = [code for key, code in mine.items() if key not in theirs]
    tally.extra_codes = [code for key, code in theirs.items() if key not in mine]
    common = [code for key, code in mine.items() if key in theirs]
    if tally.missing_codes or tally.extra_codes:
        tally.common_codes = common
    tally.add(common=bool(common), left=bool(tally.missing_codes), right=bool(tally.extra_codes))
    return tally


def verdict(tally: Tally, this_name: str, other_name: str) -> tuple[str, str]:
    """(result, message) for what is known."""
    if tally.undecided is not None:
        return "indeterminate", f"Unable to compare {this_name} and {other_name}: {tally.undecided}"
    if not (tally.common or tally.left or tally.right):
        return "empty", f"Both the value sets {this_name} and {other_name} are empty"
    if not tally.common:
        return "disjoint", f"No shared codes between the value sets {this_name} and {other_name}"
    if tally.left and tally.right:
        return "overlapping", (f"Both value sets {this_name} and {other_name} contain the codes "
                               "the other doesn't, but there is some overlap")
    if tally.left:
        return "superset", f"The valueSet {this_name} is a super-set of the valueSet {other_name}"
    if tally.right:
        return "subset", f"The valueSet {this_name} is a sub-set of the valueSet {other_name}"
    return "same", f"The value sets {this_name} and {other_name} contain the same codes"


def _name(value_set: dict[str, Any], side: str) -> str:
    """How messages name a value set: url|version, else its id, else which side it is."""
    if value_set.get("url"):
        return vs_canonical(value_set)
    return f"ValueSet/{value_set['id']}" if value_set.get("id") else f"(the {side} value set, inline)"


def compare(registry: Registry, request: CompareRequest, settings: Settings,
            limit: int | None = None) -> dict[str, Any]:
    """The $compare answer (a Parameters resource)."""
    this_name, other_name = _name(request.this, "this"), _name(request.other, "other")
    expanded = False
    this_compose, other_compose = request.this.get("compose"), request.other.get("compose")
    if not this_compose or not other_compose:
        tally = Tally(undecided=f"The ValueSet {this_name if not this_compose else other_name} has no compose")
    else:
        tally = compare_definitions(registry, this_compose, other_compose, request.policy)
        if tally.undecided is not None:
            expanded = True
            tally = compare_expansions(registry, request, settings,
                                       limit if limit is not None else settings.max_expansion_size)
    result, message = verdict(tally, this_name, other_name)
    params: list[dict[str, Any]] = [{"name": "result", "valueCode": result},
                                    {"name": "message", "valueString": message},
                                    {"name": "performed-expansion", "valueBoolean": expanded}]
    if request.diagnostics and result != "indeterminate":
        for name, codes in (("missing-codes", tally.missing_codes), ("extra-codes", tally.extra_codes),
                            ("common-codes", tally.common_codes)):
            if codes:
                params.append({"name": name, "valueString": ",".join(codes)})
    return {"resourceType": "Parameters", "parameter": params}


def handle_compare(ctx: OperationContext) -> dict[str, Any]:
    """The ("ValueSet", "compare") handler: type level, or instance level (the instance is 'this')."""
    request = compare_request(ctx.registry, ctx.bag, ctx.instance)
    return compare(ctx.registry, request, ctx.settings)
