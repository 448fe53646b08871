"""Compose filters over concepts: one compiled object per (property, op, value).

Shared by every provider that holds Concept objects: the FHIR in-memory provider uses it for
all filters, the CPT provider for the ones it does not specialise. A filter either tests a
concept (`matches`) or, when that is cheaper, lists the matching codes (`codes`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

import regex

from terminology.errors import BadRequest, TooCostly
from terminology.providers.base import Concept

# R4 filter-operator codes, plus the R5 ones the HL7 suite sends through the R4 extension.
OPERATORS = frozenset(
    {"=", "is-a", "descendent-of", "is-not-a", "regex", "in", "not-in", "generalizes",
     "child-of", "descendent-leaf", "exists"}
)
REGEX_TIMEOUT_SECONDS = 1.0
DEFAULT_MAX_REGEX_LENGTH = 500  # Settings.max_regex_length, when no request set it


class HierarchyProvider(Protocol):
    """What the generic filters need of a provider."""

    url: str
    case_sensitive: bool

    def locate(self, code: str) -> Concept | None: ...
    def descendants(self, code: str) -> list[str]: ...
    def ancestors(self, code: str) -> set[str]: ...


class PredicateFilter:
    """A filter that tests concepts one by one."""

    def __init__(self, test: Callable[[Concept], bool]) -> None:
        self._test = test

    def matches(self, concept: Concept) -> bool:
        """Whether the concept satisfies the filter."""
        return self._test(concept)

    def codes(self) -> Iterable[str] | None:
        """None: iterate the code system and test each concept."""
        return None


class CodeSetFilter:
    """A filter whose matches are a precomputed set of codes (hierarchy filters)."""

    def __init__(self, ordered: list[str]) -> None:
        self._ordered = ordered
        self._set = frozenset(ordered)

    def matches(self, concept: Concept) -> bool:
        """Whether the concept's code is in the set."""
        return concept.code in self._set

    def codes(self) -> Iterable[str] | None:
        """The matching codes in hierarchy order."""
        return self._ordered


class HierarchyFilter:
    """A hierarchy filter (is-a, descendent-of, child-of, descendent-leaf, generalizes) on one
    root: `matches` walks the concept's ancestors (a few steps), and the matching codes are
    listed only when asked, so checking one code in a big subtree costs no closure."""

    def __init__(self, cs: HierarchyProvider, root: Concept, op: str) -> None:
        self._cs = cs
        self._root = root
        self._op = op
        self._listed: list[str] | None = None
        # generalizes selects the root and its ancestors: few, so computed now
        self._up = frozenset([root.code, *cs.ancestors(root.code)]) if op == "generalizes" else None
        # in a tree the matches of is-a / descendent-of are a range of positions
        self._span = self.span()
        self._position = getattr(cs, "position", None)

    def matches(self, concept: Concept) -> bool:
        """Whether the concept stands in the filter's relation to the root."""
        root, op = self._root.code, self._op
        if self._up is not None:
            return concept.code in self._up
        if self._span is not None and self._position is not None:
            pos = self._position(concept.code)
            return pos is not None and self._span[0] <= pos < self._span[1]
        if op == "child-of":
            return root in concept.parents
        if op == "is-a" and concept.code == root:
            return True
        if concept.code == root or (op == "descendent-leaf" and concept.children):
            return False
        return root in self._cs.ancestors(concept.code)

    def span(self) -> tuple[int, int] | None:
        """[start, end) of the matches among the provider's ordered concepts, when they are
        contiguous there (is-a and descendent-of in a tree); else None."""
        spans = getattr(self._cs, "subtree_span", None)
        found = spans(self._root.code) if spans is not None else None
        if found is None or self._op not in ("is-a", "descendent-of"):
            return None
        return found if self._op == "is-a" else (found[0] + 1, found[1])

    def codes(self) -> Iterable[str] | None:
        """The matching codes in hierarchy order (computed on first use)."""
        if self._listed is None:
            self._listed = _hierarchy_codes(self._cs, self._root, self._op)
        return self._listed


def _hierarchy_codes(cs: HierarchyProvider, root: Concept, op: str) -> list[str]:
    if op == "is-a":
        return [root.code, *cs.descendants(root.code)]
    if op == "descendent-of":
        return cs.descendants(root.code)
    if op == "child-of":
        return list(root.children)
    if op == "generalizes":
        return [root.code, *sorted(cs.ancestors(root.code))]
    return [k for k in cs.descendants(root.code) if not _children_of(cs, k)]


def compile_regex(pattern: str) -> regex.Pattern[str]:
    """A compiled pattern, or a 400 naming the bad pattern: too long (the request's
    max_regex_length), or not compilable for any reason, nesting too deep for the compiler's
    recursion included. Compiled only while the request's time budget lasts."""
    deadline = _REQUEST_DEADLINE.get()
    limit = deadline.max_regex_length if deadline is not None else DEFAULT_MAX_REGEX_LENGTH
    if len(pattern) > limit:
        raise BadRequest(
            f"The regex filter is {len(pattern)} characters long, more than the {limit} this server "
            "accepts (setting max_regex_length)", code="too-costly",
            expression="ValueSet.compose.include.filter")
    if deadline is not None:
        deadline.check("The regex compilation")
    try:
        return regex.compile(pattern)
    except (regex.error, RecursionError, OverflowError, MemoryError, ValueError) as e:
        shown = pattern if len(pattern) <= 100 else pattern[:100] + "..."
        reason = "it nests too deeply" if isinstance(e, RecursionError) else str(e) or type(e).__name__
        raise BadRequest(
            f"The regex '{shown}' is not valid: {reason}", expression="ValueSet.compose.include.filter"
        ) from e


def regex_full_match(pattern: regex.Pattern[str], text: str | None) -> bool:
    """Full match with a time budget: a catastrophic pattern is too-costly, not a hung worker."""
    if text is None:
        return False
    budget = REGEX_TIMEOUT_SECONDS
    deadline = _REQUEST_DEADLINE.get()
    if deadline is not None:  # never past the request's own time limit
        deadline.check("The regex filter evaluation")
        budget = min(budget, deadline.remaining())
    try:
        # concurrent: release the GIL, so a slow pattern does not stall the worker's other threads
        # the regex module counts the timeout in process CPU time: on a loaded host the wall
        # time is longer, and the deadline check before each match bounds the total
        return pattern.fullmatch(text, timeout=budget, concurrent=True) is not None
    except TimeoutError as e:
        raise TooCostly(
            f"The regex '{pattern.pattern[:100]}' took too long to evaluate",
            message_id="REGEX_TOO_COSTLY",
        ) from e


def _split_values(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _property_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):  # valueCoding
        return str(value.get("code", ""))
    return str(value)


def _code_filter(
    cs: HierarchyProvider, op: str, value: str
) -> CodeSetFilter | HierarchyFilter | PredicateFilter:
    def norm(code: str) -> str:
        return code if cs.case_sensitive else code.lower()

    if op in ("is-a", "descendent-of", "child-of", "descendent-leaf", "generalizes"):
        root = cs.locate(value)
        if root is None:
            return CodeSetFilter([])
        return HierarchyFilter(cs, root, op)
    if op == "is-not-a":
        root = cs.locate(value)
        if root is None:
            return PredicateFilter(lambda c: True)
        below = HierarchyFilter(cs, root, "is-a")
        return PredicateFilter(lambda c: not below.matches(c))
    if op == "=":
        target = norm(value)
        return PredicateFilter(lambda c: norm(c.code) == target)
    if op in ("in", "not-in"):
        wanted = {norm(v) for v in _split_values(value)}
        if op == "in":
            return PredicateFilter(lambda c: norm(c.code) in wanted)
        return PredicateFilter(lambda c: norm(c.code) not in wanted)
    if op == "regex":
        pattern = compile_regex(value)
        return PredicateFilter(lambda c: regex_full_match(pattern, c.code))
    if op == "exists":
        return PredicateFilter(lambda c: value.lower() == "true")
    raise _unsupported(cs, "concept", op, value)


def _children_of(cs: HierarchyProvider, code: str) -> list[str]:
    concept = cs.locate(code)
    return concept.children if concept else []


def _value_filter(
    cs: HierarchyProvider, prop: str, op: str, value: str, get: Callable[[Concept], list[Any]]
) -> PredicateFilter:
    if op == "=":
        return PredicateFilter(lambda c: any(_property_text(v) == value for v in get(c)))
    if op in ("in", "not-in"):
        wanted = set(_split_values(value))
        if op == "in":
            return PredicateFilter(lambda c: any(_property_text(v) in wanted for v in get(c)))
        return PredicateFilter(lambda c: not any(_property_text(v) in wanted for v in get(c)))
    if op == "regex":
        pattern = compile_regex(value)
        return PredicateFilter(
            lambda c: any(regex_full_match(pattern, _property_text(v)) for v in get(c))
        )
    if op == "exists":
        want = value.lower() == "true"
        return PredicateFilter(lambda c: bool(get(c)) == want)
    raise _unsupported(cs, prop, op, value)


def _unsupported(cs: HierarchyProvider, prop: str, op: str, value: str) -> BadRequest:
    return unsupported_filter(cs.url, prop, op, value)


def unsupported_filter(url: str, prop: str, op: str, value: str) -> BadRequest:
    """The 400 for a filter a code system does not support (FILTER_NOT_UNDERSTOOD)."""
    return BadRequest(
        f"The filter '{prop} {op} {value}' is not supported for the code system '{url}'",
        code="not-supported",
        expression="ValueSet.compose.include.filter",
        message_id="FILTER_NOT_UNDERSTOOD",
    )


def generic_filter(cs: HierarchyProvider, prop: str, op: str, value: str) -> Any:
    """Compile the filter `prop op value` over a concept-holding provider."""
    if op not in OPERATORS:
        raise _unsupported(cs, prop, op, value)
    if prop in ("concept", "code"):
        return _code_filter(cs, op, value)
    if prop == "display":
        return _value_filter(cs, prop, op, value, lambda c: [c.display] if c.display else [])
    if prop == "parent":
        return _value_filter(cs, prop, op, value, lambda c: list(c.parents))
    if prop == "child":
        return _value_filter(cs, prop, op, value, lambda c: list(c.children))
    if prop in ("inactive",):
        return _value_filter(cs, prop, op, value, lambda c: [c.inactive])
    return _value_filter(cs, prop, op, value, lambda c: c.property_values(prop))


class Deadline:
    """A request time budget checked inside long loops (expansion, regex scans)."""

    def __init__(self, seconds: float, max_regex_length: int = DEFAULT_MAX_REGEX_LENGTH) -> None:
        self._end = time.monotonic() + seconds
        self._seconds = seconds
        self.max_regex_length = max_regex_length  # the request's regex limit rides along

    def check(self, what: str = "The operation") -> None:
        """Raise too-costly once the budget is spent."""
        if time.monotonic() > self._end:
            raise TooCostly(f"{what} took longer than the {self._seconds:g} s time limit")

    def remaining(self) -> float:
        """Seconds left in the budget (0 when spent)."""
        return max(0.0, self._end - time.monotonic())


# The time budget of the request being served (set by the HTTP layer around an operation),
# so code deep in a provider (regex filters) can honour it without it being passed down.
_REQUEST_DEADLINE: ContextVar[Deadline | None] = ContextVar("request_deadline", default=None)


@contextmanager
def request_deadline(seconds: float, max_regex_length: int = DEFAULT_MAX_REGEX_LENGTH) -> Iterator[Deadline]:
    """Run the block under a request time budget (and regex length limit) that regex
    compilation and evaluation honour."""
    deadline = Deadline(seconds, max_regex_length)
    token = _REQUEST_DEADLINE.set(deadline)
    try:
        yield deadline
    finally:
        _REQUEST_DEADLINE.reset(token)


def current_deadline() -> Deadline | None:
    """The time budget of the request being served, if any."""
    return _REQUEST_DEADLINE.get()
