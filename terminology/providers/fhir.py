"""CodeSystem resources held in memory: concepts, hierarchy and properties indexed once."""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from typing import Any

from terminology.providers.base import Concept, ConceptFilter, Designation, Prop
from terminology.providers.filters import generic_filter
from terminology.providers.text_index import TextIndex

NOT_SELECTABLE_URI = "http://hl7.org/fhir/concept-properties#notSelectable"
STATUS_URI = "http://hl7.org/fhir/concept-properties#status"
INACTIVE_URI = "http://hl7.org/fhir/concept-properties#inactive"
INACTIVE_STATUSES = frozenset({"retired", "inactive"})
STANDARDS_STATUS_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-standards-status"


def _prop_value(entry: dict[str, Any]) -> tuple[str, Any] | None:
    for key, value in entry.items():
        if key.startswith("value") and len(key) > 5:
            return key[5:], value
    return None


class FhirCodeSystemProvider:
    """A provider over one CodeSystem resource (dict), indexed at construction."""

    hierarchical: bool

    def __init__(self, resource: dict[str, Any]) -> None:
        self.url: str = resource.get("url", "")
        self.version: str | None = resource.get("version")
        self.name: str | None = resource.get("name")
        self.title: str | None = resource.get("title")
        self.content: str = resource.get("content", "complete")
        self.case_sensitive: bool = bool(resource.get("caseSensitive", False))
        self.language: str | None = resource.get("language")
        self.resource = {k: v for k, v in resource.items() if k != "concept"}
        self._prop_defs: list[dict[str, Any]] = list(resource.get("property", []))
        by_uri = {p.get("uri"): p["code"] for p in self._prop_defs if p.get("uri")}
        self._not_selectable = by_uri.get(NOT_SELECTABLE_URI, "notSelectable")
        self._status = by_uri.get(STATUS_URI, "status")
        self._inactive = by_uri.get(INACTIVE_URI, "inactive")
        self._concepts: dict[str, Concept] = {}
        # (code, designation value) -> standards-status of that designation (e.g. an old display
        # marked withdrawn); $validate-code reports such displays as no longer correct.
        self.designation_status: dict[tuple[str, str], str] = {}
        self._folded: dict[str, Concept] = {}
        self._roots: list[Concept] = []
        self._tree_parent: dict[str, str] = {}  # nested-concept parent (not parent properties)
        for c in resource.get("concept", []):
            self._roots.append(self._index(c, None))
        self._link_property_parents()
        self.hierarchical = any(c.children for c in self._concepts.values())
        if not self.case_sensitive:
            self._folded = {k.lower(): v for k, v in self._concepts.items()}
        # built on first use (or by prepare_indexes at load): see ordered_concepts()
        self._ordered: list[Concept] | None = None
        self._position: dict[str, int] = {}
        self._subtree_end: array[int] | None = None
        self._text_index: TextIndex | None = None

    def _index(self, raw: dict[str, Any], parent: str | None) -> Concept:
        concept = Concept(
            code=raw["code"],
            display=raw.get("display"),
            definition=raw.get("definition"),
            designations=[Designation.from_fhir(d) for d in raw.get("designation", [])],
            extensions=list(raw.get("extension", [])),
        )
        for d in raw.get("designation", []):
            for ext in d.get("extension", []):
                if ext.get("url") == STANDARDS_STATUS_EXT and ext.get("valueCode"):
                    self.designation_status[(raw["code"], d.get("value", ""))] = ext["valueCode"]
        for entry in raw.get("property", []):
            pv = _prop_value(entry)
            if pv is not None:
                concept.properties.append(Prop(entry.get("code", ""), pv[0], pv[1]))
        self._apply_status(concept)
        if parent is not None:
            concept.parents.append(parent)
            self._tree_parent[concept.code] = parent
        self._concepts[concept.code] = concept
        for child in raw.get("concept", []):
            concept.children.append(self._index(child, concept.code).code)
        return concept

    def _apply_status(self, concept: Concept) -> None:
        for p in concept.properties:
            if p.code == self._not_selectable and p.value is True:
                concept.abstract = True
            elif p.code == self._status and isinstance(p.value, str):
                concept.status = p.value
                concept.inactive = concept.inactive or p.value in INACTIVE_STATUSES
            elif p.code == self._inactive and p.value is True:
                concept.inactive = True

    def _link_property_parents(self) -> None:
        """Honour `parent`/`subsumedBy` properties as hierarchy links (flat CodeSystems)."""
        for concept in list(self._concepts.values()):
            for p in concept.properties:
                if p.code not in ("parent", "subsumedBy") or not isinstance(p.value, str):
                    continue
                parent = self._concepts.get(p.value)
                if parent is None or p.value in concept.parents:
                    continue
                concept.parents.append(p.value)
                parent.children.append(concept.code)
        self._roots = [c for c in self._roots if not c.parents]

    # -- the provider protocol -------------------------------------------------------------

    def locate(self, code: str) -> Concept | None:
        """The concept for `code` (case-folded when the system is case-insensitive)."""
        found = self._concepts.get(code)
        if found is None and not self.case_sensitive:
            found = self._folded.get(code.lower())
        return found

    def iterate(self) -> Iterator[Concept]:
        """Every concept, depth first, parents before children, each once."""
        seen: set[str] = set()
        stack = list(reversed(self._roots))
        while stack:
            c = stack.pop()
            if c.code in seen:
                continue
            seen.add(c.code)
            yield c
            stack.extend(self._concepts[k] for k in reversed(c.children))

    def roots(self) -> list[Concept]:
        """Top-level concepts."""
        return list(self._roots)

    def child_concepts(self, concept: Concept) -> list[Concept]:
        """The direct children of `concept`."""
        return [self._concepts[k] for k in concept.children]

    def expansion_parents(self, concept: Concept) -> list[str]:
        """Parents an expansion nests `concept` under: the CodeSystem's concept tree only
        (tx.fhir.org does not nest by `parent`/`subsumedBy` properties)."""
        parent = self._tree_parent.get(concept.code)
        return [parent] if parent else []

    def total(self) -> int:
        """Number of concepts."""
        return len(self._concepts)

    def descendants(self, code: str) -> list[str]:
        """Codes strictly below `code`, depth first."""
        span = self.subtree_span(code)
        if span is not None:
            ordered = self.ordered_concepts()
            return [c.code for c in ordered[span[0] + 1:span[1]]]
        out: list[str] = []
        seen: set[str] = set()
        stack = list(reversed(self._concepts[code].children)) if code in self._concepts else []
        while stack:
            k = stack.pop()
            if k in seen:
                continue
            seen.add(k)
            out.append(k)
            stack.extend(reversed(self._concepts[k].children))
        return out

    def ancestors(self, code: str) -> set[str]:
        """Codes strictly above `code`."""
        out: set[str] = set()
        stack = list(self._concepts[code].parents) if code in self._concepts else []
        while stack:
            k = stack.pop()
            if k not in out:
                out.add(k)
                stack.extend(self._concepts[k].parents)
        return out

    def subsumes(self, ancestor: str, descendant: str) -> bool:
        """Whether `descendant` is `ancestor` or below it."""
        a, d = self.locate(ancestor), self.locate(descendant)
        if a is None or d is None:
            return False
        return a.code == d.code or a.code in self.ancestors(d.code)

    def filter(self, prop: str, op: str, value: str) -> ConceptFilter:
        """Compile a compose filter over this code system."""
        return generic_filter(self, prop, op, value)

    def property_definitions(self) -> list[dict[str, Any]]:
        """CodeSystem.property entries."""
        return list(self._prop_defs)

    # -- positions: the concepts in iterate() order, indexed once ---------------------------

    def ordered_concepts(self) -> Sequence[Concept]:
        """Every concept in iterate() order, as one list computed once (never modify it):
        a whole-code-system include pages over it by position."""
        if self._ordered is None:
            ordered = list(self.iterate())
            self._position = {c.code: i for i, c in enumerate(ordered)}
            self._subtree_end = self._subtree_ends(ordered)
            self._ordered = ordered
        return self._ordered

    def position(self, code: str) -> int | None:
        """Where the concept `code` (exact) stands in ordered_concepts()."""
        self.ordered_concepts()
        return self._position.get(code)

    def subtree_span(self, code: str) -> tuple[int, int] | None:
        """[start, end) of `code` and its descendants in ordered_concepts(), when the hierarchy
        is a tree (depth-first order makes every subtree contiguous); else None."""
        self.ordered_concepts()
        pos = self._position.get(code)
        if self._subtree_end is None or pos is None:
            return None
        return pos, self._subtree_end[pos]

    def _subtree_ends(self, ordered: list[Concept]) -> array[int] | None:
        """For a tree (one parent each, all reachable), where each concept's subtree ends."""
        if len(ordered) != len(self._concepts) or any(len(c.parents) > 1 for c in ordered):
            return None
        ends = array("i", range(1, len(ordered) + 1))
        for pos in range(len(ordered) - 1, -1, -1):
            children = ordered[pos].children
            if children:  # preorder: the last child's subtree ends the parent's
                ends[pos] = ends[self._position[children[-1]]]
        return ends

    def text_index(self) -> TextIndex:
        """The word index of ordered_concepts() for the $expand text filter (built once)."""
        if self._text_index is None:
            self._text_index = TextIndex(self.ordered_concepts())
        return self._text_index

    def prepare_indexes(self) -> None:
        """Build the positional and text indexes now (at load, before workers fork)."""
        self.text_index()

    def full_resource(self) -> dict[str, Any]:
        """The CodeSystem resource with its concepts, rebuilt from the index (for read)."""

        def to_json(c: Concept) -> dict[str, Any]:
            out: dict[str, Any] = {"code": c.code}
            if c.display is not None:
                out["display"] = c.display
            if c.definition is not None:
                out["definition"] = c.definition
            if c.designations:
                out["designation"] = [_designation_json(d) for d in c.designations]
            if c.properties:
                out["property"] = [{"code": p.code, "value" + p.value_type: p.value} for p in c.properties]
            nested = [k for k in c.children if self._concepts[k].parents[:1] == [c.code]]
            if nested:
                out["concept"] = [to_json(self._concepts[k]) for k in nested]
            return out

        return {**self.resource, "concept": [to_json(c) for c in self._roots]}


def _designation_json(d: Designation) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if d.language:
        out["language"] = d.language
    if d.use:
        out["use"] = d.use
    out["value"] = d.value
    return out
