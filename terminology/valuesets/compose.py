"""ValueSet.compose evaluation, shared by $expand and $validate-code: the one import both use.

Two questions are asked of a compose:

* `check_membership` (membership.py): is system|code in the value set? Answered without
  expanding the value set: the code is located in the provider and each filter's
  `matches()` is tested.
* `expand_compose` (expansion.py): every member, in order, with hierarchy where the code
  system has one.

R4 ValueSet.compose: a code is in the value set when some include selects it and no exclude
does. Within one include, `system` (+concept list / filters) and `valueSet` imports are
intersected; the includes are unioned. The pieces: options.py (what changes evaluation),
resolution.py (value sets, code system versions and providers, compiled filters),
evaluation.py (the state of one evaluation), entries.py (expansion entries and nesting),
stream.py (members counted and paged without building every entry).
"""

from __future__ import annotations

from terminology.valuesets.entries import ExpansionEntry, nest_entries, walk_contains
from terminology.valuesets.expansion import Expansion, expand_compose
from terminology.valuesets.membership import MembershipResult, check_membership
from terminology.valuesets.options import (
    EXPANSION_PARAMETER_EXTS,
    STANDARDS_STATUS_EXT,
    ComposeOptions,
    VersionedRequest,
    request_options,
    status_warnings,
    too_costly,
    value_set_parameters,
    vs_canonical,
)
from terminology.valuesets.resolution import (
    FILTER_OP_EXT,
    HIERARCHY_OPS,
    choose_version,
    compile_filters,
    filter_op,
    resolve_include_provider,
    resolve_value_set,
)

__all__ = [
    "EXPANSION_PARAMETER_EXTS", "FILTER_OP_EXT", "HIERARCHY_OPS", "STANDARDS_STATUS_EXT",
    "ComposeOptions", "Expansion", "ExpansionEntry", "MembershipResult", "VersionedRequest",
    "check_membership", "choose_version", "compile_filters", "expand_compose", "filter_op",
    "nest_entries", "request_options", "resolve_include_provider", "resolve_value_set",
    "status_warnings", "too_costly", "value_set_parameters", "vs_canonical", "walk_contains",
]
