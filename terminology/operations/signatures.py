"""What each operation takes: its parameters by name and type, checked before it runs.

One table (`SIGNATURES`) names every parameter an operation understands (R4's
OperationDefinitions, the R5/tx-ecosystem additions tx.fhir.org accepts, and the tx.fhir.org
extras the HL7 suite sends) with its FHIR type. From it, `checked()` wraps a handler so that:

* a typed value with the wrong syntax is a 400 naming the parameter: BCP 47 language lists
  (displayLanguage, and the Accept-Language header it defaults to), date/dateTime, integer,
  boolean, uri, canonical (`url|version`: both sides present) and code;
* a parameter the operation does not know is reported as a warning issue naming it and the
  closest known name. tx.fhir.org ignores unknown parameters and answers as if they were not
  sent, and HL7's suite sends some (`limit`, `profile-url`, ...), so a successful answer is
  unchanged. The warning rides on an error answer, where a misspelling (`sytem`) is usually
  the cause: its text is in `diagnostics` with no `details`, which is where HL7's runner (and
  the Java validator) leaves informational notes out of the comparison.

The code under test (`code`, `coding`, `codeableConcept` of $validate-code and $lookup) is not
syntax-checked: a malformed code is the answer's subject (unknown or invalid code), as on
tx.fhir.org, not a malformed request.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from terminology.errors import BadRequest, FhirError, Issue
from terminology.operations.context import Handler, OperationContext
from terminology.params import TEXT_KEYS, Param, ParamBag

# -- the syntax of FHIR primitive types (R4 datatypes.html regexes) and BCP 47 ------------------

_DATE = r"[0-9]{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01]))?)?"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
DATE_TIME = re.compile(_DATE + rf"(T{_TIME}(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?")
CODE = re.compile(r"[^\s]+( [^\s]+)*")
URI = re.compile(r"\S+")
BOOLEAN = re.compile(r"true|false")
INTEGER = re.compile(r"[+-]?[0-9]+")
# RFC 4647 language range (what Accept-Language and displayLanguage list) and RFC 5646 tag
_ALNUM = "[A-Za-z0-9]"
LANGUAGE_RANGE = re.compile(rf"\*|[A-Za-z]{{1,8}}(-{_ALNUM}{{1,8}})*")
LANGUAGE_TAG = re.compile(
    rf"((?P<lang>[A-Za-z]{{2,3}}(-[A-Za-z]{{3}}){{0,3}}|[A-Za-z]{{4,8}})"
    rf"(-[A-Za-z]{{4}})?(-([A-Za-z]{{2}}|[0-9]{{3}}))?(-({_ALNUM}{{5,8}}|[0-9]{_ALNUM}{{3}}))*"
    rf"(-[0-9A-WY-Za-wy-z](-{_ALNUM}{{2,8}})+)*(-x(-{_ALNUM}{{1,8}})+)?|x(-{_ALNUM}{{1,8}})+)")
_QUALITY = re.compile(r"q=(0(\.[0-9]{0,3})?|1(\.0{0,3})?)")

# -- the table -------------------------------------------------------------------------------

_COMMON = {"tx-resource": "resource", "cache-id": "string", "diagnostics": "boolean",
           "profile-url": "string", "_count": "integer", "_offset": "integer"}
_VERSION_RULES = {"system-version": "canonical", "check-system-version": "canonical",
                  "force-system-version": "canonical", "default-valueset-version": "canonical",
                  "default-to-latest-version": "boolean", "useSupplement": "canonical"}
_VALIDATE = {
    "code": "subject", "coding": "subject", "codeableConcept": "subject", "system": "uri",
    "systemVersion": "string", "version": "string", "display": "string", "date": "dateTime",
    "abstract": "boolean", "displayLanguage": "languages", "inferSystem": "boolean",
    "activeOnly": "boolean", "lenient-display-validation": "boolean",
    "valueset-membership-only": "boolean", "mode": "code", "valueSetMode": "code",
    **_VERSION_RULES, **_COMMON,
}
SIGNATURES: dict[tuple[str, str], dict[str, str]] = {
    ("CodeSystem", "lookup"): {
        "code": "subject", "system": "uri", "version": "string", "coding": "subject",
        "date": "dateTime", "displayLanguage": "languages", "property": "code",
        **_VERSION_RULES, **_COMMON},
    ("CodeSystem", "validate-code"): {"url": "canonical", "codeSystem": "resource", **_VALIDATE},
    ("ValueSet", "validate-code"): {
        "url": "canonical", "context": "uri", "valueSet": "resource", "valueSetVersion": "string",
        **_VALIDATE},
    ("ValueSet", "batch-validate-code"): {
        "url": "canonical", "valueSet": "resource", "valueSetVersion": "string",
        "validation": "parts", **_VALIDATE},
    ("ValueSet", "expand"): {
        "url": "canonical", "valueSet": "resource", "valueSetVersion": "string", "context": "uri",
        "contextDirection": "code", "filter": "string", "date": "dateTime", "offset": "integer",
        "count": "integer", "includeDesignations": "boolean", "designation": "string",
        "includeDefinition": "boolean", "activeOnly": "boolean", "excludeNested": "boolean",
        "excludeNotForUI": "boolean", "excludePostCoordinated": "boolean",
        "displayLanguage": "languages", "exclude-system": "canonical", "property": "string",
        "versionsMatch": "boolean", "_elements": "string", "_summary": "code", "_total": "code",
        **_VERSION_RULES, **_COMMON},
    ("CodeSystem", "subsumes"): {
        "codeA": "subject", "codeB": "subject", "system": "uri", "version": "string",
        "codingA": "subject", "codingB": "subject", **_COMMON},
    ("ConceptMap", "translate"): {
        "url": "canonical", "conceptMap": "resource", "conceptMapVersion": "string",
        "code": "subject", "system": "uri", "version": "string", "source": "canonical",
        "coding": "subject", "codeableConcept": "subject", "target": "canonical",
        "targetsystem": "uri", "dependency": "parts", "reverse": "boolean",
        "sourceCode": "subject", "sourceSystem": "uri", "sourceVersion": "string",
        "sourceCoding": "subject", "sourceCodeableConcept": "subject", "targetCode": "subject",
        "targetCoding": "subject", "targetCodeableConcept": "subject", "targetSystem": "uri",
        "sourceScope": "canonical", "targetScope": "canonical", **_COMMON},
}


def _text(p: Param) -> str | None:
    """The value as text when it was sent as text (a query or a string-like value[x])."""
    if p.from_query or p.key in TEXT_KEYS:
        return str(p.value)
    return None


def _bad(name: str, value: str, what: str) -> BadRequest:
    return BadRequest(f"The parameter '{name}' must be {what}, not '{value}'", expression=name)


def check_language_list(name: str, value: str) -> None:
    """400 unless `value` is a language priority list: BCP 47 ranges (or `*`), comma
    separated, each with an optional `;q=` weight (what Accept-Language carries)."""
    for item in value.split(","):
        rng, *weights = [part.strip() for part in item.split(";")]
        if (not LANGUAGE_RANGE.fullmatch(rng) or (rng != "*" and not LANGUAGE_TAG.fullmatch(rng))
                or any(not _QUALITY.fullmatch(w.replace(" ", "")) for w in weights)):
            raise _bad(name, value, "a BCP 47 language tag (or a list of them, as in "
                       "Accept-Language: 'en, de;q=0.5')")


def _check_canonical(name: str, value: str) -> None:
    url, sep, version = value.partition("|")
    if not URI.fullmatch(value) or not url or (sep and not version):
        raise _bad(name, value, "a canonical URL (a uri without spaces, optionally "
                   "'|version' with a version after the bar)")


def _check_value(name: str, kind: str, p: Param) -> None:
    text = _text(p)
    if text is None:
        return  # a typed value[x] (valueBoolean, valueInteger, ...): the reader checks its type
    if kind == "languages":
        check_language_list(name, text)
    elif kind == "dateTime" and not DATE_TIME.fullmatch(text):
        raise _bad(name, text, "a FHIR date or dateTime (YYYY, YYYY-MM, YYYY-MM-DD or "
                   "YYYY-MM-DDThh:mm:ss+zz:zz)")
    elif kind == "code" and not CODE.fullmatch(text):
        raise _bad(name, text, "a code (no leading, trailing or repeated whitespace)")
    elif kind == "uri" and not URI.fullmatch(text):
        raise _bad(name, text, "a uri (a non-empty value without whitespace)")
    elif kind == "canonical":
        _check_canonical(name, text)
    elif kind == "boolean" and not BOOLEAN.fullmatch(text.strip().lower()):
        raise _bad(name, text, "true or false")
    elif kind == "integer" and not INTEGER.fullmatch(text.strip()):
        raise _bad(name, text, "an integer")


def check_syntax(signature: dict[str, str], bag: ParamBag, accept_language: str | None) -> None:
    """400 for the first parameter (or Accept-Language) whose value has the wrong syntax."""
    for p in bag.params:
        kind = signature.get(p.name)
        if kind is not None:
            _check_value(p.name, kind, p)
    if accept_language is not None and accept_language.strip():
        check_language_list("Accept-Language", accept_language)


def unknown_parameter_issues(signature: dict[str, str], bag: ParamBag) -> list[Issue]:
    """A warning for each parameter name the operation does not know, with the closest
    known name when one is close."""
    issues = []
    for name in dict.fromkeys(p.name for p in bag.params if p.name not in signature):
        close = difflib.get_close_matches(name, list(signature), n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        issues.append(Issue("warning", "not-supported", "", [name], diagnostics=(
            f"The parameter '{name}' is not known to this operation and was ignored{hint}")))
    return issues


def checked(rtype: str, op: str, handler: Handler) -> Handler:
    """`handler` with its parameters checked first (syntax: 400) and unknown parameters
    reported on an error answer (warnings)."""
    signature = SIGNATURES.get((rtype, op))
    if signature is None:
        return handler

    def run(ctx: OperationContext) -> dict[str, Any]:
        try:
            check_syntax(signature, ctx.bag, ctx.accept_language)
            return handler(ctx)
        except FhirError as e:
            e.issues.extend(unknown_parameter_issues(signature, ctx.bag))
            raise

    run.__doc__ = handler.__doc__
    return run


def signature_of(rtype: str, op: str) -> dict[str, str]:
    """The parameters `op` on `rtype` knows, by name, with their types."""
    return dict(SIGNATURES.get((rtype, op), {}))

