"""Display validation against languages: every combination of code system language,
designations, requested languages and display, each checked against the rules written in
terminology/operations/validate/displays.py.

The expected answer comes from `expected()`, a small oracle that restates those rules on
its own; it never calls the implementation.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

import pytest

from terminology.content import make_provider
from terminology.operations.validate import validate_code_system
from terminology.params import bag_from_parameters, validate_code_request
from terminology.registry import Registry

CS_URL = "http://example.test/lang-matrix"
BASE = "Base display"
DESIGNATIONS = {"none": [], "de": [("de", "Anzeige")], "en+de": [("en", "Shown name"), ("de", "Anzeige")]}
REQUESTS = {  # label -> (displayLanguage / Accept-Language value, tags best first)
    "none": (None, []),
    "en": ("en", ["en"]), "de": ("de", ["de"]), "en,de": ("en,de", ["en", "de"]),
    "en;q": ("en;q=0.8", ["en"]), "de;q": ("de;q=0.7", ["de"]),
    "de-first;q": ("en;q=0.3, de;q=0.9", ["de", "en"]),
    "en,de;q=0": ("en, de;q=0", ["en"]),
}
DISPLAYS = ("right", "wrong", "other-language")


@dataclass(frozen=True)
class Candidate:
    value: str
    language: str | None


@dataclass(frozen=True)
class Expected:
    result: bool
    issue: tuple[str, str] | None  # (severity, message id) of the display issue
    listed: list[str] | None  # the valid displays a Wrong Display message lists, labelled
    display: str | None  # the display returned


def candidates(cs_lang: str | None, designations: list[tuple[str, str]]) -> list[Candidate]:
    """Rule 1: the concept's display in the code system's language, then its designations."""
    return [Candidate(BASE, cs_lang)] + [Candidate(v, lang) for lang, v in designations]


def suits(tags: list[str], c: Candidate) -> bool:
    """Rule 3."""
    if not tags or c.language is None:
        return True
    return any(t.split("-")[0].lower() == c.language.split("-")[0].lower() for t in tags)


def label(c: Candidate) -> str:
    return f"'{c.value}' ({c.language})" if c.language else f"'{c.value}'"


def expected(cs_lang: str | None, designations: list[tuple[str, str]], tags: list[str],
             given: str) -> Expected:
    """Rules 4 and 5 of displays.py, restated."""
    cands = candidates(cs_lang, designations)
    suitable = [c for c in cands if suits(tags, c)]
    returned = None
    for t in tags:
        returned = next((c.value for c in cands if c.language and suits([t], c)), None)
        if returned:
            break
    if returned is None:
        returned = next((c.value for c in cands if c.language is None), cands[0].value)
    if any(c.value.lower() == given.lower() for c in suitable):
        return Expected(True, None, None, returned)
    if suitable:
        return Expected(False, ("error", "Display_Name_for__should_be_one_of__instead_of"),
                        [label(c) for c in suitable], returned)
    if any(c.value.lower() == given.lower() and (cs_lang is None or c.language == cs_lang) for c in cands):
        return Expected(True, ("information", "NO_VALID_DISPLAY_FOUND_NONE_FOR_LANG_OK"), None, returned)
    return Expected(False, ("error", "NO_VALID_DISPLAY_FOUND_NONE_FOR_LANG_ERR"), None, returned)


def given_display(kind: str, designations: list[tuple[str, str]]) -> str:
    if kind == "right":
        return BASE
    if kind == "wrong":
        return "Not a display of this code"
    return designations[-1][1] if designations else "Anzeige"  # de, or unknown when none


def code_system(cs_lang: str | None, designations: list[tuple[str, str]]) -> dict[str, Any]:
    concept: dict[str, Any] = {"code": "c1", "display": BASE}
    if designations:
        concept["designation"] = [{"language": lang, "value": v} for lang, v in designations]
    cs: dict[str, Any] = {"resourceType": "CodeSystem", "url": CS_URL, "version": "1",
                          "status": "active", "content": "complete", "concept": [concept]}
    if cs_lang:
        cs["language"] = cs_lang
    return cs


def answer(cs: dict[str, Any], given: str, requested: str | None, header: bool) -> dict[str, Any]:
    registry = Registry()
    registry.add_code_system(make_provider(cs))
    params: list[dict[str, Any]] = [{"name": "url", "valueUri": CS_URL},
                                    {"name": "code", "valueCode": "c1"},
                                    {"name": "display", "valueString": given}]
    if requested is not None and not header:
        params.append({"name": "displayLanguage", "valueString": requested})
    request = validate_code_request(bag_from_parameters({"resourceType": "Parameters", "parameter": params}),
                                    for_code_system=True)
    return validate_code_system(registry, request, None, requested if header else None)


def value(params: dict[str, Any], name: str) -> Any:
    for p in params["parameter"]:
        if p["name"] == name:
            return next((v for k, v in p.items() if k.startswith("value")), p.get("resource"))
    return None


def display_issues(params: dict[str, Any]) -> list[dict[str, Any]]:
    issues = value(params, "issues") or {"issue": []}
    return [i for i in issues["issue"]
            if i["details"]["coding"][0]["code"] in ("invalid-display", "display-comment")]


CASES = list(itertools.product((None, "en", "de"), DESIGNATIONS, REQUESTS, DISPLAYS, (False, True)))


@pytest.mark.parametrize(("cs_lang", "des", "req", "kind", "header"), CASES,
                         ids=[f"cs={c[0]}-des={c[1]}-req={c[2]}-{c[3]}-{'header' if c[4] else 'param'}"
                              for c in CASES])
def test_display_check_follows_the_written_rules(cs_lang: str | None, des: str, req: str,
                                                 kind: str, header: bool) -> None:
    designations = DESIGNATIONS[des]
    raw, tags = REQUESTS[req]
    given = given_display(kind, designations)
    want = expected(cs_lang, designations, tags, given)
    got = answer(code_system(cs_lang, designations), given, raw, header)
    assert value(got, "result") is want.result
    assert value(got, "display") == want.display
    issues = display_issues(got)
    if want.issue is None:
        assert issues == []
        return
    assert len(issues) == 1
    issue = issues[0]
    mid = issue["extension"][0]["valueString"]
    assert (issue["severity"], mid) == want.issue
    text = issue["details"]["text"]
    assert f"(for the language(s) '{raw or '--'}')" in text or mid.startswith("NO_VALID")
    if want.listed is not None:
        listed = re.search(r"Valid display is (?:one of \d+ choices: )?(.*) \(for the language", text)
        assert listed is not None, text
        assert re.split(r", | or ", listed.group(1)) == want.listed
        if len(want.listed) > 1:
            assert f"one of {len(want.listed)} choices" in text


def test_matrix_covers_every_combination() -> None:
    assert len(CASES) == 3 * 3 * 8 * 3 * 2
