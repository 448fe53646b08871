"""CPT (http://www.ama-assn.org/go/cpt): base codes, modifiers, "72126:26" expressions, CPT filters.

One provider serves both CPT sources: the bundled imaging fragment (a FHIR CodeSystem,
content `fragment`) and the operator's licensed CPT database in tx.fhir.org's SQLite format
(content `complete`). Both become a `CptRelease` (terminology.cpt.release) and then the same
precomputed Concept objects and filter indexes, so an operation never knows which it has.

Lookup shape of an expression (`locate("72126:26")`), as tx.fhir.org/FHIRsmith give it:

* code = the expression as written, no display, no designations;
* properties: the base code's properties (kind, telemedicine, imaging facets, ...), with
  `modified` = true; the Boolean `modifier` is left out (an expression is not a modifier,
  and the property code is used for the modifiers it carries); then, for each modifier in
  the order written, `modifier` (valueCode, the modifier code) followed by
  `modifier-definition` (valueString, the modifier's long descriptor).
"""

from __future__ import annotations

import bisect
import os
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from terminology.cpt import rules as cpt_rules
from terminology.cpt.concept_maps import derived_concept_maps
from terminology.cpt.release import (
    CPT_URL,
    CptConcept,
    CptRelease,
    read_cpt_db,
    release_from_codesystem,
)
from terminology.cpt.shared import ConceptPool
from terminology.errors import BadRequest
from terminology.providers.base import Concept, Designation, Prop
from terminology.providers.filters import unsupported_filter
from terminology.providers.positions import bitmap, positions, span_bitmap
from terminology.providers.text_index import TextIndex
from terminology.settings import CPT_COPYRIGHT_NOTICE

AMA_COPYRIGHT = ("CPT © Copyright American Medical Association. All rights reserved. AMA and CPT "
                 "are registered trademarks of the American Medical Association.")
# The statement tx.fhir.org (FHIRsmith) adds to every CPT $lookup answer; the setting
# cpt_copyright replaces it (content.load_content sets `lookup_copyright` on each provider).
LOOKUP_COPYRIGHT = CPT_COPYRIGHT_NOTICE
UNCLOSED_REASON = f"The code System '{CPT_URL}' has a grammar and so has infinite members"

# The designation uses of CPT descriptors: a code system shipped in codesystems/
# designation-uses.json (CPT itself defines no such codes).
DESCRIPTOR_TYPE_URL = "https://terminology.cpt-imaging.org/fhir/CodeSystem/cpt-descriptor-type"
DESCRIPTOR_TYPES = {"upper": "Long descriptor, upper case", "med": "Medium descriptor",
                    "short": "Short descriptor", "consumer": "Consumer descriptor",
                    "clinician": "Clinician descriptor"}


def descriptor_use(dtype: str) -> dict[str, str]:
    """The designation use (a Coding) of a CPT descriptor type."""
    use = {"system": DESCRIPTOR_TYPE_URL, "code": dtype}
    if dtype in DESCRIPTOR_TYPES:
        use["display"] = DESCRIPTOR_TYPES[dtype]
    return use


BOOLEAN_PROPERTIES = ("modifier", "modified", "telemedicine", "orthopox")
CODE_PROPERTIES = ("kind", "modality", "body-region", "contrast")
FACETS = ("modality", "body-region", "contrast")  # this project's imaging facets, not CPT's
VALUE_FILTERS = ("kind", *FACETS)  # '=' and 'in' over a Code property
FLAG_FILTERS = ("modifier", "telemedicine", "orthopox")  # '=' true/false
FILTER_EXPRESSION = "ValueSet.compose.include.filter"
MAX_COMPILED_FILTERS = 1024  # compiled filters a provider keeps (then it starts afresh)

PROPERTY_DEFINITIONS: dict[str, dict[str, Any]] = {
    "modifier": {"code": "modifier", "type": "boolean",
                 "description": "True if the code is a modifier code, false otherwise"},
    "modified": {"code": "modified", "type": "boolean",
                 "description": "Whether the code is an expression with modifiers (72126:26); "
                                "false for every code in the CPT distribution"},
    "kind": {"code": "kind", "type": "code",
             "description": "The kind of CPT code: code, cat-1, cat-2, physical-status, "
                            "general, hcpcs or metadata (several may apply)"},
    "telemedicine": {"code": "telemedicine", "type": "boolean",
                     "description": "True where the code may be used with modifier 95 "
                                    "(CPT Appendix P)"},
    "orthopox": {"code": "orthopox", "type": "boolean",
                 "description": "True for the orthopoxvirus laboratory and immunization codes"},
    "modality": {"code": "modality", "uri": "urn:cpt-imaging:property:modality", "type": "code",
                 "description": "Imaging modality (project facet, not CPT)"},
    "body-region": {"code": "body-region", "uri": "urn:cpt-imaging:property:body-region",
                    "type": "code", "description": "Body region imaged (project facet, not CPT)"},
    "contrast": {"code": "contrast", "uri": "urn:cpt-imaging:property:contrast", "type": "code",
                 "description": "Contrast use (project facet, not CPT)"},
}

FILTER_DEFINITIONS: list[dict[str, Any]] = [
    {"code": "modifier", "operator": ["="], "value": "true or false",
     "description": "Modifier codes (true) or base codes (false)"},
    {"code": "modified", "operator": ["="], "value": "true or false",
     "description": "Expressions with modifiers (true) or plain codes (false)"},
    {"code": "kind", "operator": ["=", "in"], "value": "a kind, or a comma-separated list",
     "description": "Codes of the given kind(s)"},
    {"code": "telemedicine", "operator": ["="], "value": "true or false",
     "description": "Codes usable with modifier 95 (CPT Appendix P)"},
    {"code": "orthopox", "operator": ["="], "value": "true or false",
     "description": "Orthopoxvirus codes"},
    {"code": "code", "operator": ["in"], "value": "codes and inclusive ranges, e.g. 72125-72133,70450",
     "description": "Codes in a list of codes and ranges"},
]
FACET_FILTER_DEFINITIONS: list[dict[str, Any]] = [
    {"code": f, "operator": ["=", "in"], "value": "a value, or a comma-separated list",
     "description": f"Imaging facet {f} (project-defined)"} for f in FACETS
]


@dataclass(slots=True)
class ExpressionConcept(Concept):
    """A valid CPT expression located by `CptProvider.locate` (not an enumerable concept)."""

    expression: cpt_rules.CptExpression | None = None


class CptFilter:
    """A compiled CPT filter: a bitmap over the release's positions (release order).

    Compiled once per (property, op, value) and kept by the provider: testing a code is a
    shift, counting the members a popcount, and two filters intersect with one `&`.
    Expressions are members of a filter only when it is open (`modified = true`), as in
    tx.fhir.org: every other CPT filter is closed over the codes of the release.
    """

    __slots__ = ("_bits", "_open", "_provider", "_codes")

    def __init__(self, provider: CptProvider, bits: int, *, open_to_expressions: bool = False) -> None:
        self._provider = provider
        self._bits = bits
        self._open = open_to_expressions
        self._codes: list[str] | None = None

    def matches(self, concept: Concept) -> bool:
        """Whether the concept (or expression) satisfies the filter."""
        if isinstance(concept, ExpressionConcept):
            return self._open
        pos = self._provider.position(concept.code)
        return pos is not None and (self._bits >> pos) & 1 == 1

    def codes(self) -> Iterable[str] | None:
        """The matching codes of the release, in release order (listed once)."""
        if self._codes is None:
            ordered = self._provider.ordered_concepts()
            self._codes = [ordered[p].code for p in positions(self._bits)]
        return self._codes

    def bitmap(self) -> int:
        """The matching positions in the provider's ordered_concepts(), as a bitmap."""
        return self._bits


class CptProvider:
    """CodeSystemProvider for CPT.

    Besides the protocol it offers `explain_unknown(code)` (why an expression is invalid),
    `grammar_error(code)` (a broken rule that makes a code invalid even in a fragment),
    `extra_properties(concept)` (the AMA copyright on $lookup answers) and `full_resource()`.
    `unclosed = True`: CPT has a grammar (modifier expressions), so no expansion lists every
    member; the $expand engine marks CPT expansions with the valueset-unclosed extension and
    `unclosed_reason`.
    """

    case_sensitive = True
    hierarchical = False
    unclosed = True
    release_history = True  # unknown codes name the other releases that have them (operations.releases.history)
    unclosed_reason = UNCLOSED_REASON
    lookup_copyright = LOOKUP_COPYRIGHT  # the setting cpt_copyright, set at load

    def __init__(self, release: CptRelease, resource: dict[str, Any],
                 rule_set: str = cpt_rules.CPT_RULES, pool: ConceptPool | None = None) -> None:
        self.url: str = CPT_URL
        self.rule_set = cpt_rules.check_rule_set(rule_set)
        self.version: str | None = release.version
        self.name: str | None = resource.get("name")
        self.title: str | None = resource.get("title")
        self.content: str = resource.get("content", "complete")
        self.language: str | None = resource.get("language") or "en"
        self.resource = {k: v for k, v in resource.items() if k != "concept"}
        # with a pool (several releases loaded), unchanged concepts are those of the releases
        # loaded before: one Concept object for all of them (terminology.cpt.shared). A
        # release holds one dict of its own (code -> position) and two lists, so that ten
        # releases cost little more than one.
        shared: dict[Any, Any] = pool.shared if pool is not None else {}
        self._cpt: list[CptConcept] = list(release.concepts.values())
        self._ordered: list[Concept] = (
            pool.concepts(self._cpt, lambda c: _to_concept(c, shared)) if pool is not None
            else [_to_concept(c, shared) for c in self._cpt])
        self._size = len(self._ordered)
        numbers: list[int] = shared.setdefault("positions", [])  # one int object per position
        numbers.extend(range(len(numbers), self._size))
        self._order = dict(zip([c.code for c in self._cpt], numbers, strict=False))
        self._by_code = _ByCode(self._order, self._cpt)  # code -> CptConcept, for the rules
        # Built on first use (prepare_indexes builds them at load for the newest release):
        # property -> value -> bitmap of the codes with that value (flags: 'true' and
        # 'false'), and the five-character codes sorted with their positions ('code in').
        self._bitmaps: dict[str, dict[str, int]] | None = None
        self._ranges: tuple[list[str], array[int]] | None = None
        self._prop_defs: list[dict[str, Any]] = list(resource.get("property", []))
        self._filters: dict[tuple[str, str, str], CptFilter] = {}  # compiled, bounded
        self._text_index: TextIndex | None = None

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def from_codesystem(cls, resource: dict[str, Any],
                        rule_set: str = cpt_rules.CPT_RULES) -> CptProvider:
        """A provider over a CPT CodeSystem resource (the bundled imaging fragment)."""
        return cls(release_from_codesystem(resource), resource, rule_set)

    @classmethod
    def from_database(cls, path: str | os.PathLike[str], rule_set: str = cpt_rules.CPT_RULES,
                      pool: ConceptPool | None = None) -> CptProvider:
        """A provider over a tx.fhir.org-format CPT database (the operator's licensed CPT);
        with `pool`, sharing unchanged concepts with the releases loaded through it."""
        release = read_cpt_db(path, pool.read if pool is not None else None)
        return cls(release, database_resource(release), rule_set, pool)

    # -- the provider protocol -------------------------------------------------------------

    def locate(self, code: str) -> Concept | None:
        """The concept for a code, the expression concept for a valid expression, else None."""
        pos = self._order.get(code)
        if pos is not None:
            return self._ordered[pos]
        if not cpt_rules.is_expression(code):
            return None
        checked = cpt_rules.validate(code, self._by_code, self.rule_set)
        return None if isinstance(checked, str) else self._expression_concept(code, checked)

    def explain_unknown(self, code: str) -> str | None:
        """Why `code` is not a CPT code or valid expression, when there is more to say than
        "unknown code": the wrong separator, a form CPT does not have, or the rule an
        expression breaks."""
        if code in self._order:
            return None
        if not cpt_rules.wrong_separator(code) and (bad := cpt_rules.syntax_error(code)):
            return bad
        if cpt_rules.is_expression(code) or cpt_rules.wrong_separator(code):
            checked = cpt_rules.validate(code, self._by_code, self.rule_set)
            return checked if isinstance(checked, str) else None
        return None

    def grammar_error(self, code: str) -> str | None:
        """Why `code` is invalid whatever else CPT holds: a wrong separator, a form CPT does
        not have (`hello`, `7212`, `72126:2`), or an expression whose parts all exist but
        break a rule. Unlike a missing code, this makes the code invalid even when the code
        system is only a fragment."""
        if code in self._order:
            return None
        if cpt_rules.wrong_separator(code):
            checked = cpt_rules.parse(code, self._by_code)
            return checked if isinstance(checked, str) else None
        if (bad := cpt_rules.syntax_error(code)) is not None:
            return bad
        if not cpt_rules.is_expression(code):
            return None
        parsed = cpt_rules.parse(code, self._by_code)
        if isinstance(parsed, str):
            return None  # a part this release lacks; another fragment may hold it
        return ", ".join(cpt_rules.problems(parsed, self.rule_set)) or None

    def iterate(self) -> Iterator[Concept]:
        """Every code and modifier in release order (expressions are not enumerable)."""
        return iter(self._ordered)

    def roots(self) -> list[Concept]:
        """All concepts: CPT is flat."""
        return list(self._ordered)

    def total(self) -> int:
        """How many codes and modifiers the release holds."""
        return self._size

    def subsumes(self, ancestor: str, descendant: str) -> bool:
        """CPT defines no subsumption: only a code subsumes itself."""
        return ancestor == descendant and self.locate(ancestor) is not None

    def filter(self, prop: str, op: str, value: str) -> CptFilter:
        """Compile a CPT filter (once per filter: the provider keeps it); a 400
        (FILTER_NOT_UNDERSTOOD) for any other filter."""
        key = (prop, op, value)
        found = self._filters.get(key)
        if found is None:
            found = self._compile(prop, op, value)
            if len(self._filters) >= MAX_COMPILED_FILTERS:  # values are client input: bounded
                self._filters.clear()
            self._filters[key] = found
        return found

    def _compile(self, prop: str, op: str, value: str) -> CptFilter:
        if prop == "modified" and op == "=":
            if _flag(prop, op, value):
                return CptFilter(self, 0, open_to_expressions=True)
            return CptFilter(self, span_bitmap(0, self._size))
        if prop in FLAG_FILTERS and op == "=":
            return CptFilter(self, self._filter_index()[prop]["true" if _flag(prop, op, value) else "false"])
        if prop in VALUE_FILTERS and op in ("=", "in"):
            wanted = [value] if op == "=" else _split(value, ",")
            values = self._filter_index().get(prop, {})
            bits = 0
            for v in wanted:
                bits |= values.get(v, 0)
            return CptFilter(self, bits)
        if prop == "code" and op == "in":
            return CptFilter(self, self._codes_in(value))
        raise unsupported_filter(self.url, prop, op, value)

    def property_definitions(self) -> list[dict[str, Any]]:
        """CodeSystem.property entries."""
        return list(self._prop_defs)

    # -- extras ------------------------------------------------------------------------------

    def extra_properties(self, concept: Concept) -> list[Prop]:
        """Properties $lookup adds to every CPT answer: the AMA copyright statement."""
        return [Prop("copyright", "String", self.lookup_copyright)]

    def licensed_texts(self) -> Iterator[str]:
        """Every AMA descriptor this release may hand out (display, designations, definitions):
        what the HTTP face counts per answer (terminology/http/licensed.py, which keeps one
        set for all loaded releases: a set per release would cost a hash table per release,
        where releases share their unchanged strings)."""
        for c in self._ordered:
            if c.display:
                yield c.display
            if c.definition:
                yield c.definition
            yield from (d.value for d in c.designations if d.value)

    def full_resource(self) -> dict[str, Any]:
        """The CodeSystem for read: with its concepts for the bundled fragment; a licensed
        database is never handed out whole (the AMA agreement caps what is distributed, as
        tx.fhir.org caps CPT expansions), so a read gives its metadata, content not-present."""
        if self.content != "fragment":
            return {**self.resource, "content": "not-present"}
        return {**self.resource, "concept": [_concept_json(c) for c in self._ordered]}

    def derived_concept_maps(self) -> list[dict[str, Any]]:
        """The ConceptMaps derived from this release (terminology.cpt.concept_maps), with
        descriptors only for the bundled fragment."""
        release = CptRelease(self.version or "", {c.code: c for c in self._cpt})
        return derived_concept_maps(release, displays=self.content == "fragment")

    # -- internals ---------------------------------------------------------------------------

    def _expression_concept(self, code: str, exp: cpt_rules.CptExpression) -> ExpressionConcept:
        base = self._ordered[self._order[exp.base.code]]
        props = [p for p in base.properties if p.code not in ("modifier", "modified")]
        props.insert(0, Prop("modified", "Boolean", True))
        for m in exp.modifiers:
            props.append(Prop("modifier", "Code", m.code))
            if m.display:
                props.append(Prop("modifier-definition", "String", m.display))
        return ExpressionConcept(code=code, properties=props, expression=exp)

    def _codes_in(self, value: str) -> int:
        """The bitmap of the codes named by 'code in' items: single codes and inclusive
        ranges low-high."""
        bits = 0
        for item in _split(value, ",;"):
            low, sep, high = item.partition("-")
            if not sep:
                pos = self._order.get(item)
                if pos is not None:
                    bits |= 1 << pos
                continue
            low, high = low.strip(), high.strip()
            if len(low) != 5 or len(high) != 5 or low > high:
                raise BadRequest(
                    f"The filter 'code in {value}' has an invalid range '{item}': a range is "
                    "two five-character codes, low-high (e.g. 72125-72133)",
                    expression=FILTER_EXPRESSION, message_id="FILTER_NOT_UNDERSTOOD")
            ranged, ranged_pos = self._code_ranges()
            lo = bisect.bisect_left(ranged, low)
            hi = bisect.bisect_right(ranged, high)
            bits |= bitmap(ranged_pos[lo:hi], self._size)
        return bits

    # -- positions and the text index (the engine's IndexedProvider) ---------------------

    def ordered_concepts(self) -> Sequence[Concept]:
        """Every code and modifier in release order (never modify it): positions index it."""
        return self._ordered

    def position(self, code: str) -> int | None:
        """Where the code stands in ordered_concepts() (None for expressions and unknowns)."""
        return self._order.get(code)

    def text_index(self) -> TextIndex:
        """The word index over displays, codes and designations (built once)."""
        if self._text_index is None:
            self._text_index = TextIndex(self._ordered)
        return self._text_index

    def prepare_indexes(self) -> None:
        """Build the text and filter indexes now (at load, before workers fork: they share
        them); a release that is not prepared builds each on its first use."""
        self.text_index()
        self._filter_index()
        self._code_ranges()

    def _filter_index(self) -> dict[str, dict[str, int]]:
        """property -> value -> bitmap of the codes with that value (built once)."""
        if self._bitmaps is None:
            self._bitmaps = _property_bitmaps(self._cpt, self._size)
        return self._bitmaps

    def _code_ranges(self) -> tuple[list[str], array[int]]:
        """The five-character codes sorted, and their positions (built once)."""
        if self._ranges is None:
            ranged = sorted(k for k in self._order if len(k) == 5)
            self._ranges = (ranged, array("i", (self._order[k] for k in ranged)))
        return self._ranges


# -- building ---------------------------------------------------------------------------------


class _ByCode(Mapping[str, CptConcept]):
    """A release's CptConcepts by code, read through the provider's code -> position dict
    (no second dict per release)."""

    __slots__ = ("_order", "_cpt")

    def __init__(self, order: dict[str, int], cpt: list[CptConcept]) -> None:
        self._order, self._cpt = order, cpt

    def __getitem__(self, code: str) -> CptConcept:
        return self._cpt[self._order[code]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)


def database_resource(release: CptRelease) -> dict[str, Any]:
    """CodeSystem metadata for a licensed CPT database: AMA copyright, properties, filters."""
    present = {"modifier", "modified", "kind", "telemedicine", "orthopox"}
    for c in release.concepts.values():
        present.update(c.properties)
    facets = [f for f in FACETS if f in present]
    return {
        "resourceType": "CodeSystem",
        "id": f"cpt-{release.version}",
        "url": CPT_URL,
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": "urn:oid:2.16.840.1.113883.6.12"}],
        "version": release.version,
        "name": "AmaCpt",
        "title": "Current Procedural Terminology (CPT)",
        "status": "active",
        "experimental": False,
        "publisher": "American Medical Association",
        "description": f"CPT {release.version}, loaded from the operator's licensed CPT database.",
        "copyright": AMA_COPYRIGHT,
        "caseSensitive": True,
        "compositional": True,
        "content": "complete",
        "count": len(release.concepts),
        "filter": FILTER_DEFINITIONS + [d for d in FACET_FILTER_DEFINITIONS if d["code"] in facets],
        "property": [dict(d) for k, d in PROPERTY_DEFINITIONS.items() if k in present],
    }


def _to_concept(c: CptConcept, shared: dict[Any, Any]) -> Concept:
    """The Concept for one release entry: display = long descriptor, typed properties.

    Property values and designation uses repeat across the release: one object each is
    shared through `shared` (read-only, like every Concept), a few MB less per process."""
    def once(key: Any, make: Any) -> Any:
        found = shared.get(key)
        if found is None:
            found = shared[key] = make()
        return found

    props = [once(("modifier", c.modifier), lambda: Prop("modifier", "Boolean", c.modifier)),
             once(("modified", False), lambda: Prop("modified", "Boolean", False))]
    for name, values in c.properties.items():
        props.extend(once((name, v), lambda n=name, v=v: _prop(n, v)) for v in values)
    return Concept(
        code=c.code,
        display=c.display or None,
        designations=[Designation("en", once((None, t), lambda t=t: descriptor_use(t)), v)
                      for t, v in c.designations],
        properties=props,
        abstract="metadata" in c.properties.get("kind", []),  # tx.fhir.org: metadata codes
    )


def _prop(name: str, value: str) -> Prop:
    if name in BOOLEAN_PROPERTIES:
        return Prop(name, "Boolean", value == "true")
    if name in CODE_PROPERTIES:
        return Prop(name, "Code", value)
    return Prop(name, "String", value)


def _property_bitmaps(cpt: list[CptConcept], size: int) -> dict[str, dict[str, int]]:
    """property -> value -> bitmap of the codes holding it (by position in `cpt`); flags
    also get 'false'."""
    listed: dict[str, dict[str, list[int]]] = {}
    for pos, c in enumerate(cpt):
        listed.setdefault("modifier", {}).setdefault("true" if c.modifier else "false", []).append(pos)
        for name, values in c.properties.items():
            for v in dict.fromkeys(values):
                listed.setdefault(name, {}).setdefault(v, []).append(pos)
    index = {name: {v: bitmap(ps, size) for v, ps in values.items()} for name, values in listed.items()}
    everything = span_bitmap(0, size)
    for flag in ("modifier", "telemedicine", "orthopox"):
        true = index.setdefault(flag, {}).get("true", 0)
        index[flag]["true"] = true
        index[flag]["false"] = everything & ~true
    return index


def _flag(prop: str, op: str, value: str) -> bool:
    """A true/false filter value; anything else is a filter we do not understand."""
    if value not in ("true", "false"):
        raise BadRequest(
            f"The filter '{prop} {op} {value}' is not supported for the code system "
            f"'{CPT_URL}': the value must be true or false",
            code="not-supported", expression=FILTER_EXPRESSION, message_id="FILTER_NOT_UNDERSTOOD")
    return value == "true"


def _split(value: str, separators: str) -> list[str]:
    for sep in separators[1:]:
        value = value.replace(sep, separators[0])
    return [v.strip() for v in value.split(separators[0]) if v.strip()]


def _concept_json(c: Concept) -> dict[str, Any]:
    """A CodeSystem.concept entry rebuilt from a Concept."""
    out: dict[str, Any] = {"code": c.code}
    if c.display is not None:
        out["display"] = c.display
    if c.designations:
        out["designation"] = [{"language": d.language, "use": d.use, "value": d.value}
                              for d in c.designations]
    out["property"] = [{"code": p.code, "value" + p.value_type: p.value} for p in c.properties]
    return out
