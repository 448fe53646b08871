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
from collections.abc import Iterable, Iterator
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
from terminology.errors import BadRequest
from terminology.providers.base import Concept, Designation, Prop
from terminology.providers.filters import unsupported_filter
from terminology.settings import CPT_COPYRIGHT_NOTICE

AMA_COPYRIGHT = ("CPT © Copyright American Medical Association. All rights reserved. AMA and CPT "
                 "are registered trademarks of the American Medical Association.")
# The statement tx.fhir.org (FHIRsmith) adds to every CPT $lookup answer; the setting
# cpt_copyright replaces it (content.load_content sets `lookup_copyright` on each provider).
LOOKUP_COPYRIGHT = CPT_COPYRIGHT_NOTICE
UNCLOSED_REASON = f"The code System '{CPT_URL}' has a grammar and so has infinite members"

BOOLEAN_PROPERTIES = ("modifier", "modified", "telemedicine", "orthopox")
CODE_PROPERTIES = ("kind", "modality", "body-region", "contrast")
FACETS = ("modality", "body-region", "contrast")  # this project's imaging facets, not CPT's
VALUE_FILTERS = ("kind", *FACETS)  # '=' and 'in' over a Code property
FLAG_FILTERS = ("modifier", "telemedicine", "orthopox")  # '=' true/false
FILTER_EXPRESSION = "ValueSet.compose.include.filter"

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
    """A compiled CPT filter: a precomputed list of matching codes, in release order.

    Expressions are members of a filter only when it is open (`modified = true`), as in
    tx.fhir.org: every other CPT filter is closed over the codes of the release.
    """

    __slots__ = ("_codes", "_set", "_open")

    def __init__(self, codes: list[str], *, open_to_expressions: bool = False) -> None:
        self._codes = codes
        self._set = frozenset(codes)
        self._open = open_to_expressions

    def matches(self, concept: Concept) -> bool:
        """Whether the concept (or expression) satisfies the filter."""
        if isinstance(concept, ExpressionConcept):
            return self._open
        return concept.code in self._set

    def codes(self) -> Iterable[str] | None:
        """The matching codes of the release, in release order."""
        return self._codes


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
    unclosed_reason = UNCLOSED_REASON
    lookup_copyright = LOOKUP_COPYRIGHT  # the setting cpt_copyright, set at load

    def __init__(self, release: CptRelease, resource: dict[str, Any],
                 rule_set: str = cpt_rules.CPT_RULES) -> None:
        self.url: str = CPT_URL
        self.rule_set = cpt_rules.check_rule_set(rule_set)
        self.version: str | None = release.version
        self.name: str | None = resource.get("name")
        self.title: str | None = resource.get("title")
        self.content: str = resource.get("content", "complete")
        self.language: str | None = resource.get("language") or "en"
        self.resource = {k: v for k, v in resource.items() if k != "concept"}
        self._release = release
        self._concepts: dict[str, Concept] = {c.code: _to_concept(c) for c in release.concepts.values()}
        self._order = {code: i for i, code in enumerate(self._concepts)}
        self._index = _property_index(release)
        self._ranged = sorted(k for k in self._concepts if len(k) == 5)  # for 'code in' ranges
        self._prop_defs: list[dict[str, Any]] = list(resource.get("property", []))

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def from_codesystem(cls, resource: dict[str, Any],
                        rule_set: str = cpt_rules.CPT_RULES) -> CptProvider:
        """A provider over a CPT CodeSystem resource (the bundled imaging fragment)."""
        return cls(release_from_codesystem(resource), resource, rule_set)

    @classmethod
    def from_database(cls, path: str | os.PathLike[str],
                      rule_set: str = cpt_rules.CPT_RULES) -> CptProvider:
        """A provider over a tx.fhir.org-format CPT database (the operator's licensed CPT)."""
        release = read_cpt_db(path)
        return cls(release, database_resource(release), rule_set)

    # -- the provider protocol -------------------------------------------------------------

    def locate(self, code: str) -> Concept | None:
        """The concept for a code, the expression concept for a valid expression, else None."""
        found = self._concepts.get(code)
        if found is not None or not cpt_rules.is_expression(code):
            return found
        checked = cpt_rules.validate(code, self._release.concepts, self.rule_set)
        return None if isinstance(checked, str) else self._expression_concept(code, checked)

    def explain_unknown(self, code: str) -> str | None:
        """Why `code` is not a CPT code or valid expression, when there is more to say than
        "unknown code": the rule an expression breaks, or the wrong separator."""
        if code in self._concepts:
            return None
        if cpt_rules.is_expression(code) or cpt_rules.wrong_separator(code):
            checked = cpt_rules.validate(code, self._release.concepts, self.rule_set)
            return checked if isinstance(checked, str) else None
        return None

    def grammar_error(self, code: str) -> str | None:
        """Why `code` is invalid whatever else CPT holds: a wrong separator, or an expression
        whose parts all exist but break a rule. Unlike a missing code, this makes the code
        invalid even when the code system is only a fragment."""
        if code in self._concepts:
            return None
        if cpt_rules.wrong_separator(code):
            checked = cpt_rules.parse(code, self._release.concepts)
            return checked if isinstance(checked, str) else None
        if not cpt_rules.is_expression(code):
            return None
        parsed = cpt_rules.parse(code, self._release.concepts)
        if isinstance(parsed, str):
            return None  # a part this release lacks; another fragment may hold it
        return ", ".join(cpt_rules.problems(parsed, self.rule_set)) or None

    def iterate(self) -> Iterator[Concept]:
        """Every code and modifier in release order (expressions are not enumerable)."""
        return iter(self._concepts.values())

    def roots(self) -> list[Concept]:
        """All concepts: CPT is flat."""
        return list(self._concepts.values())

    def total(self) -> int:
        """How many codes and modifiers the release holds."""
        return len(self._concepts)

    def subsumes(self, ancestor: str, descendant: str) -> bool:
        """CPT defines no subsumption: only a code subsumes itself."""
        return ancestor == descendant and self.locate(ancestor) is not None

    def filter(self, prop: str, op: str, value: str) -> CptFilter:
        """Compile a CPT filter; a 400 (FILTER_NOT_UNDERSTOOD) for any other filter."""
        if prop == "modified" and op == "=":
            if _flag(prop, op, value):
                return CptFilter([], open_to_expressions=True)
            return CptFilter(list(self._concepts))
        if prop in FLAG_FILTERS and op == "=":
            return CptFilter(self._index[prop]["true" if _flag(prop, op, value) else "false"])
        if prop in VALUE_FILTERS and op in ("=", "in"):
            wanted = [value] if op == "=" else _split(value, ",")
            return CptFilter(self._union(self._index.get(prop, {}).get(v, []) for v in wanted))
        if prop == "code" and op == "in":
            return CptFilter(self._codes_in(value))
        raise unsupported_filter(self.url, prop, op, value)

    def property_definitions(self) -> list[dict[str, Any]]:
        """CodeSystem.property entries."""
        return list(self._prop_defs)

    # -- extras ------------------------------------------------------------------------------

    def extra_properties(self, concept: Concept) -> list[Prop]:
        """Properties $lookup adds to every CPT answer: the AMA copyright statement."""
        return [Prop("copyright", "String", self.lookup_copyright)]

    def full_resource(self) -> dict[str, Any]:
        """The CodeSystem for read: with its concepts for the bundled fragment; a licensed
        database is never handed out whole (the AMA agreement caps what is distributed, as
        tx.fhir.org caps CPT expansions), so a read gives its metadata, content not-present."""
        if self.content != "fragment":
            return {**self.resource, "content": "not-present"}
        return {**self.resource, "concept": [_concept_json(c) for c in self._concepts.values()]}

    def derived_concept_maps(self) -> list[dict[str, Any]]:
        """The ConceptMaps derived from this release (terminology.cpt.concept_maps), with
        descriptors only for the bundled fragment."""
        return derived_concept_maps(self._release, displays=self.content == "fragment")

    # -- internals ---------------------------------------------------------------------------

    def _expression_concept(self, code: str, exp: cpt_rules.CptExpression) -> ExpressionConcept:
        base = self._concepts[exp.base.code]
        props = [p for p in base.properties if p.code not in ("modifier", "modified")]
        props.insert(0, Prop("modified", "Boolean", True))
        for m in exp.modifiers:
            props.append(Prop("modifier", "Code", m.code))
            if m.display:
                props.append(Prop("modifier-definition", "String", m.display))
        return ExpressionConcept(code=code, properties=props, expression=exp)

    def _union(self, lists: Iterable[list[str]]) -> list[str]:
        """The codes of several index lists, once each, in release order."""
        groups = [codes for codes in lists if codes]
        if len(groups) == 1:
            return groups[0]  # an index list is already in release order
        merged: set[str] = set()
        for codes in groups:
            merged.update(codes)
        return sorted(merged, key=self._order.__getitem__)

    def _codes_in(self, value: str) -> list[str]:
        """Codes named by 'code in' items: single codes and inclusive ranges low-high."""
        lists: list[list[str]] = []
        for item in _split(value, ",;"):
            low, sep, high = item.partition("-")
            if not sep:
                lists.append([item] if item in self._concepts else [])
                continue
            low, high = low.strip(), high.strip()
            if len(low) != 5 or len(high) != 5 or low > high:
                raise BadRequest(
                    f"The filter 'code in {value}' has an invalid range '{item}': a range is "
                    "two five-character codes, low-high (e.g. 72125-72133)",
                    expression=FILTER_EXPRESSION, message_id="FILTER_NOT_UNDERSTOOD")
            lo = bisect.bisect_left(self._ranged, low)
            hi = bisect.bisect_right(self._ranged, high)
            lists.append(self._ranged[lo:hi])
        # ranges are cut from the code-sorted list: put the union back in release order
        merged = {code for codes in lists for code in codes}
        return sorted(merged, key=self._order.__getitem__)


# -- building ---------------------------------------------------------------------------------


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


def _to_concept(c: CptConcept) -> Concept:
    """The Concept for one release entry: display = long descriptor, typed properties."""
    props = [Prop("modifier", "Boolean", c.modifier), Prop("modified", "Boolean", False)]
    for name, values in c.properties.items():
        props.extend(_prop(name, v) for v in values)
    return Concept(
        code=c.code,
        display=c.display or None,
        designations=[Designation("en", {"system": CPT_URL, "code": t}, v)
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


def _property_index(release: CptRelease) -> dict[str, dict[str, list[str]]]:
    """property -> value -> codes (release order); flags also get their 'false' lists."""
    index: dict[str, dict[str, list[str]]] = {}
    for c in release.concepts.values():
        index.setdefault("modifier", {}).setdefault("true" if c.modifier else "false", []).append(c.code)
        for name, values in c.properties.items():
            for v in dict.fromkeys(values):
                index.setdefault(name, {}).setdefault(v, []).append(c.code)
    for flag in ("telemedicine", "orthopox"):
        true = frozenset(index.get(flag, {}).get("true", []))
        index.setdefault(flag, {})["true"] = [k for k in release.concepts if k in true]
        index[flag]["false"] = [k for k in release.concepts if k not in true]
    index["modifier"].setdefault("true", [])
    index["modifier"].setdefault("false", [])
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
