"""ConceptMap/$translate: forward (source code -> targets) and reverse (target code -> sources).

Answers are R4: each match carries `equivalence` (R4 ConceptMap.group.element.target.equivalence),
the mapped `concept`, and `originMap` (the map used). A map written with R5 `relationship`
is read too, its relationship turned into the R4 equivalence.
Parameter names are accepted in their R4 form (code, system, coding, targetsystem) and their
R5 form (sourceCode, sourceSystem, sourceCoding, targetCode, targetSystem).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from terminology.errors import BadRequest, NotFound
from terminology.operations.context import OperationContext
from terminology.params import ParamBag
from terminology.registry import Registry, split_canonical

# R5 ConceptMap relationship -> R4 equivalence (the FHIR R5->R4 conversion map).
RELATIONSHIP_TO_EQUIVALENCE = {
    "related-to": "relatedto",
    "equivalent": "equivalent",
    "source-is-narrower-than-target": "narrower",
    "source-is-broader-than-target": "wider",
    "not-related-to": "disjoint",
}
NOT_A_MATCH = frozenset({"unmatched", "disjoint"})


@dataclass
class TranslateRequest:
    """$translate inputs (R4 and R5 names folded together)."""

    code: str
    system: str | None
    reverse: bool
    target_system: str | None = None
    url: str | None = None
    concept_map: dict[str, Any] | None = None


def translate_request(bag: ParamBag) -> TranslateRequest:
    """Parse $translate parameters; 400 without a code to translate."""
    coding = bag.coding("coding") or bag.coding("sourceCoding") or bag.coding("targetCoding")
    reverse = bool(bag.boolean("reverse")) or bag.has("targetCode") or bag.has("targetCoding")
    code = bag.text("code") or bag.text("sourceCode") or bag.text("targetCode")
    system = bag.text("system") or bag.text("sourceSystem")
    if coding is not None:
        code, system = coding.get("code"), coding.get("system") or system
    if not code:
        raise BadRequest("$translate needs a code (code/sourceCode/targetCode or a coding)",
                         expression="code")
    target = bag.text("targetsystem") or bag.text("targetSystem")
    if reverse and bag.has("targetCode"):
        # R5 reverse: the code is a target code; sourceSystem names where to map back to
        system, target = target, system
    return TranslateRequest(code, system, reverse, target, bag.text("url"), bag.resource("conceptMap"))


def equivalence(target: dict[str, Any]) -> str:
    """A target's R4 equivalence (from R5 relationship when that is what the map carries)."""
    if target.get("equivalence"):
        return str(target["equivalence"])
    return RELATIONSHIP_TO_EQUIVALENCE.get(str(target.get("relationship")), "relatedto")


def _maps(registry: Registry, request: TranslateRequest) -> list[dict[str, Any]]:
    if request.concept_map is not None:
        return [request.concept_map]
    if request.url:
        base, version = split_canonical(request.url)
        found = registry.concept_map(base, version)
        if found is None:
            raise NotFound(f"A definition for the ConceptMap '{request.url}' could not be found",
                           expression="url")
        return [found]
    return list(registry.concept_maps())


def _canonical(cm: dict[str, Any]) -> str:
    url = cm.get("url", "")
    return f"{url}|{cm['version']}" if cm.get("version") else url


def _forward(cm: dict[str, Any], req: TranslateRequest) -> Iterator[dict[str, Any]]:
    for group in cm.get("group", []):
        if req.system and group.get("source") != req.system:
            continue
        if req.target_system and group.get("target") != req.target_system:
            continue
        for element in group.get("element", []):
            if element.get("code") != req.code:
                continue
            for target in element.get("target", []):
                concept = {"system": group.get("target"), "code": target.get("code")}
                yield _match(concept, equivalence(target), cm, target)


def _reverse(cm: dict[str, Any], req: TranslateRequest) -> Iterator[dict[str, Any]]:
    for group in cm.get("group", []):
        if req.system and group.get("target") != req.system:
            continue
        if req.target_system and group.get("source") != req.target_system:
            continue
        for element in group.get("element", []):
            for target in element.get("target", []):
                if target.get("code") != req.code:
                    continue
                concept = {"system": group.get("target"), "code": target.get("code")}
                match = _match(concept, equivalence(target), cm, target)
                match["part"].append({"name": "source", "valueCoding": {
                    "system": group.get("source"), "code": element.get("code")}})
                yield match


def _match(concept: dict[str, Any], equiv: str, cm: dict[str, Any],
           target: dict[str, Any]) -> dict[str, Any]:
    concept = {k: v for k, v in concept.items() if v}
    if target.get("display"):
        concept["display"] = target["display"]
    parts: list[dict[str, Any]] = [
        {"name": "equivalence", "valueCode": equiv},
        {"name": "concept", "valueCoding": concept},
        {"name": "originMap", "valueCanonical": _canonical(cm)},
    ]
    if target.get("comment"):
        parts.append({"name": "message", "valueString": target["comment"]})
    for product in target.get("product", []):
        parts.append(_product(product))
    return {"name": "match", "part": parts}


def _product(product: dict[str, Any]) -> dict[str, Any]:
    """R4 $translate match.product: the element (property) and the concept it has."""
    concept = {k: v for k, v in (("system", product.get("system")), ("code", product.get("value")),
                                 ("display", product.get("display"))) if v}
    return {"name": "product", "part": [{"name": "element", "valueUri": product.get("property")},
                                        {"name": "concept", "valueCoding": concept}]}


def translate(registry: Registry, request: TranslateRequest) -> dict[str, Any]:
    """The $translate answer: result, message when nothing maps, and the matches."""
    matches: list[dict[str, Any]] = []
    for cm in _maps(registry, request):
        found = _reverse(cm, request) if request.reverse else _forward(cm, request)
        matches.extend(found)
    result = any(p["valueCode"] not in NOT_A_MATCH for m in matches for p in m["part"]
                 if p["name"] == "equivalence")
    out: list[dict[str, Any]] = [{"name": "result", "valueBoolean": result}]
    if not result:
        out.append({"name": "message", "valueString":
                    f"No translations found for '{request.system or ''}#{request.code}'"})
    out.extend(matches)
    return {"resourceType": "Parameters", "parameter": out}


def handle_translate(ctx: OperationContext) -> dict[str, Any]:
    """ConceptMap/$translate handler (type and instance level)."""
    request = translate_request(ctx.bag)
    if ctx.instance is not None and request.concept_map is None and not request.url:
        request.concept_map = ctx.registry.concept_map(ctx.instance.get("url", ""),
                                                       ctx.instance.get("version")) or ctx.instance
    return translate(ctx.registry, request)
