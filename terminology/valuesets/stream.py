"""An expansion's members held as runs of concepts, built into entries only when shown.

Each include of a compose contributes a run: the concepts of one provider it selects (a whole
code system is the provider's own ordered list, shared, never copied), or, for members taken
from imported value sets, ready-made entries. `Members` concatenates the runs: its length is
the exact total, a page is found by position, and an ExpansionEntry is built only for the
members returned. Removing duplicates and excluded codes, and the text filter, make new runs
by testing candidates, still without building entries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from terminology.providers.base import CodeSystemProvider, Concept
from terminology.providers.text_index import TextIndex
from terminology.valuesets.entries import ExpansionEntry

# builds the entry for (provider, concept, nestable, compose concept, filtered)
EntryMaker = Callable[[CodeSystemProvider, Concept, bool, "dict[str, Any] | None", bool], "ExpansionEntry"]
KeyTest = Callable[[str, "str | None", str], bool]  # (system, version, code) -> keep?


class IndexedProvider(Protocol):
    """A provider with positions and a text index (providers/fhir.py)."""

    def ordered_concepts(self) -> Sequence[Concept]: ...
    def position(self, code: str) -> int | None: ...
    def text_index(self) -> TextIndex: ...


class ConceptRun:
    """Concepts of one provider an include selects, in order; `whole` when they are the
    provider's ordered_concepts() itself (positions are then indexes)."""

    __slots__ = ("provider", "concepts", "nestable", "filtered", "vs_concepts", "whole")

    def __init__(self, provider: CodeSystemProvider, concepts: Sequence[Concept], *,
                 nestable: bool = False, filtered: bool = False,
                 vs_concepts: Sequence[dict[str, Any]] | None = None, whole: bool = False) -> None:
        self.provider = provider
        self.concepts = concepts
        self.nestable = nestable
        self.filtered = filtered
        self.vs_concepts = vs_concepts  # the compose concepts, parallel to `concepts`
        self.whole = whole

    def __len__(self) -> int:
        return len(self.concepts)

    def key(self, merge: bool) -> tuple[str, str | None]:
        """The code system (version) its codes belong to."""
        return self.provider.url, None if merge else self.provider.version

    def entries(self, make: EntryMaker, start: int, stop: int) -> list[ExpansionEntry]:
        """Entries for concepts[start:stop]."""
        p, nest, filt, raws = self.provider, self.nestable, self.filtered, self.vs_concepts
        if raws is None:
            return [make(p, c, nest, None, filt) for c in self.concepts[start:stop]]
        return [make(p, c, nest, r, filt)
                for c, r in zip(self.concepts[start:stop], raws[start:stop], strict=True)]

    def keep(self, test: Callable[[int, Concept], bool]) -> ConceptRun:
        """The run restricted to the concepts `test(i, concept)` accepts."""
        chosen = [i for i, c in enumerate(self.concepts) if test(i, c)]
        if len(chosen) == len(self.concepts):
            return self
        raws = self.vs_concepts
        return ConceptRun(self.provider, [self.concepts[i] for i in chosen],
                          nestable=self.nestable, filtered=self.filtered,
                          vs_concepts=None if raws is None else [raws[i] for i in chosen])


class EntryRun:
    """Members already built as entries (taken from imported value sets)."""

    __slots__ = ("items",)

    def __init__(self, items: list[ExpansionEntry]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def entries(self, make: EntryMaker, start: int, stop: int) -> list[ExpansionEntry]:
        """items[start:stop]."""
        return self.items[start:stop]


Run = ConceptRun | EntryRun


class Members:
    """The members of an expansion, in order: runs concatenated, entries built on demand."""

    def __init__(self, runs: list[Run], make: EntryMaker) -> None:
        self.runs = [r for r in runs if len(r)]
        self.make = make
        self._all: list[ExpansionEntry] | None = None

    def __len__(self) -> int:
        return sum(len(r) for r in self.runs)

    def slice(self, start: int, stop: int | None) -> list[ExpansionEntry]:
        """Entries of members [start:stop], building only those."""
        out: list[ExpansionEntry] = []
        stop = len(self) if stop is None else stop
        base = 0
        for run in self.runs:
            n = len(run)
            lo, hi = max(start - base, 0), min(stop - base, n)
            if lo < hi:
                out.extend(run.entries(self.make, lo, hi))
            base += n
            if base >= stop:
                break
        return out

    def entries(self) -> list[ExpansionEntry]:
        """Every member's entry (built once)."""
        if self._all is None:
            self._all = self.slice(0, None)
        return self._all

    def __iter__(self) -> Iterator[ExpansionEntry]:
        return iter(self.entries())

    def system_versions(self) -> dict[str, set[str | None]]:
        """system -> the versions its members come from."""
        out: dict[str, set[str | None]] = {}
        for run in self.runs:
            if isinstance(run, ConceptRun):
                out.setdefault(run.provider.url, set()).add(run.provider.version)
            else:
                for e in run.items:
                    out.setdefault(e.system, set()).add(e.version)
        return out

    def may_repeat(self, merge: bool) -> bool:
        """Whether a code can be in two runs (two includes of one code system, or imports)."""
        keys = [r.key(merge) for r in self.runs if isinstance(r, ConceptRun)]
        return len(set(keys)) < len(keys) or (len(keys) < len(self.runs) and len(self.runs) > 1)

    def deduplicated(self, merge: bool) -> Members:
        """Each code once: the first run that has it keeps it (merge: whatever the version)."""
        seen: set[tuple[str, str | None, str]] = set()

        def first(system: str, version: str | None, code: str) -> bool:
            key = (system, None if merge else version, code)
            if key in seen:
                return False
            seen.add(key)
            return True

        return self.keep(first)

    def keep(self, test: KeyTest) -> Members:
        """The members whose (system, version, code) passes `test`, in order."""
        runs: list[Run] = []
        for run in self.runs:
            if isinstance(run, ConceptRun):
                runs.append(run.keep(_code_test(run, test)))
            else:
                runs.append(EntryRun([e for e in run.items if test(e.system, e.version, e.code)]))
        return Members(runs, self.make)

    def text_filtered(self, text: str, matches: Callable[[ExpansionEntry], bool]) -> Members:
        """The members the text filter selects: by the provider's word index where the run's
        texts are the concepts' own, else by testing each entry with `matches`."""
        runs: list[Run] = []
        for run in self.runs:
            index = _indexed(run)
            if index is None:
                runs.append(EntryRun([e for e in run.entries(self.make, 0, len(run)) if matches(e)]))
                continue
            assert isinstance(run, ConceptRun)
            hits = index.text_index().search(text)
            if hits is None:
                runs.append(run)
            elif run.whole:
                ordered = index.ordered_concepts()
                runs.append(ConceptRun(run.provider, [ordered[p] for p in hits],
                                       nestable=run.nestable, filtered=run.filtered))
            else:
                runs.append(run.keep(_position_test(index, hits)))
        return Members(runs, self.make)


def _indexed(run: Run) -> IndexedProvider | None:
    """The run's provider when its text index answers for the run (the run shows the concepts'
    own displays, not a value set's)."""
    if not isinstance(run, ConceptRun) or run.vs_concepts is not None:
        return None
    provider: Any = run.provider
    return provider if hasattr(provider, "text_index") else None


def _code_test(run: ConceptRun, test: KeyTest) -> Callable[[int, Concept], bool]:
    url, version = run.provider.url, run.provider.version

    def keep(_: int, concept: Concept) -> bool:
        return test(url, version, concept.code)

    return keep


def _position_test(index: IndexedProvider, hits: list[int]) -> Callable[[int, Concept], bool]:
    found = set(hits)

    def test(_: int, concept: Concept) -> bool:
        return index.position(concept.code) in found

    return test
