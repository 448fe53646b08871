"""CodeSystem/$validate-code and ValueSet/$validate-code.

A bad code is a result, not an error: the answer is a Parameters resource with `result`, a
`message` and an `issues` OperationOutcome whose issues carry tx-issue-type codes and point at
the offending element (`Coding.code`, `CodeableConcept.coding[0].display`, ...). Only an unknown
value set, a malformed request or a broken value set definition is an HTTP error.

Every form of input (code+system, Coding, CodeableConcept) is checked as a CodeableConcept: the
answer is true when some coding is valid in the value set and nothing is in error.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from terminology.content import request_resource
from terminology.errors import BadRequest, Issue
from terminology.operations.context import OperationContext
from terminology.operations.validate.checker import (
    Checker,
    add_unknown_code,
    checker_settings,
    fragment_may_hold,
    resolve_target_value_set,
)
from terminology.operations.validate.displays import DisplayList
from terminology.operations.validate.messages import message, version_list
from terminology.operations.validate.outcome import PrepareError, add_to_path
from terminology.operations.validate.state import CodingState, RequestState, VersionRules
from terminology.params import ValidateCodeRequest, validate_code_request
from terminology.providers.base import CodeSystemProvider
from terminology.registry import Registry
from terminology.valuesets.compose import ComposeOptions, request_options
from terminology.valuesets.supplements import canonical, supplements_for

ISSUE_PATHS = {"code": "", "coding": "Coding", "codeableConcept": "CodeableConcept"}


@dataclass
class Answer:
    """The pieces of a $validate-code answer, turned into Parameters by `parameters()`."""

    result: bool = False
    system: str | None = None
    code: str | None = None
    version: str | None = None
    display: str | None = None
    inactive: bool = False
    status: str | None = None
    normalized: str | None = None
    codeable_concept: dict[str, Any] | None = None
    unknown_key: str = "x-caused-by-unknown-system"
    unknown_systems: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    issues: dict[str, Any] | None = None

    def parameters(self) -> dict[str, Any]:
        """The Parameters resource."""
        out: list[dict[str, Any]] = [{"name": "result", "valueBoolean": self.result}]
        for name, key, value in (
            ("system", "valueUri", self.system), ("code", "valueCode", self.code),
            ("version", "valueString", self.version), ("display", "valueString", self.display),
            ("status", "valueCode", self.status), ("normalized-code", "valueCode", self.normalized),
        ):
            if value:
                out.append({"name": name, key: value})
        if self.inactive:
            out.append({"name": "inactive", "valueBoolean": True})
        out.extend({"name": self.unknown_key, "valueCanonical": u} for u in self.unknown_systems)
        if self.messages:
            out.append({"name": "message", "valueString": "; ".join(sorted(self.messages))})
        if self.codeable_concept is not None:
            out.append({"name": "codeableConcept", "valueCodeableConcept": self.codeable_concept})
        if self.issues is not None:
            out.append({"name": "issues", "resource": self.issues})
        return {"resourceType": "Parameters", "parameter": out}


class _Messages(list[str]):
    """The message list: each text once, in the order first seen."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[str] = set()  # the texts, rebuilt if the list was appended to directly
        self._synced = 0

    def add(self, text: str | None) -> None:
        if not text:
            return
        if self._synced != len(self):
            self._seen = set(self)
        if text not in self._seen:
            self.append(text)
            self._seen.add(text)
        self._synced = len(self)


@dataclass
class _Best:
    """The coding the answer reports: the valid one, else the first tried."""

    system: str | None = None
    code: str | None = None
    version: str | None = None
    display: str | None = None
    valid_code: str | None = None
    valid_system: str | None = None
    valid_version: str | None = None
    tried_code: str | None = None
    tried_system: str | None = None
    tried_version: str | None = None


def check_coded(checker: Checker, issue_path: str, coded: dict[str, Any], mode: str) -> Answer:
    """Validate a CodeableConcept (or a Coding / code wrapped as one) against the value set."""
    rs = RequestState()
    mt = _Messages()
    vs = checker.value_set
    if not checker.internally_defined:
        checker.check_canonical_status(rs.op, "ValueSet", vs, checker.vurl)
    ok: bool | None = False
    best = _Best()
    codelist: list[str] = []
    inactive: CodingState | None = None
    unknown_codes: set[str] = set()
    for i, coding in enumerate(coded.get("coding", [])):
        path = add_to_path(issue_path, f"coding[{i}]") if issue_path == "CodeableConcept" else issue_path
        if not coding.get("code"):
            rs.op.add("error", "invalid", path, None,
                      f"Coding has no code for system {coding.get('system')} and cannot be validated",
                      "invalid-data")
            break
        st = CodingState(wanted_display=coding.get("display"), version_given=bool(coding.get("version")))
        v = checker.check(path, coding.get("system"), coding.get("version"), coding["code"], st, rs)
        for text in rs.messages:
            mt.add(text)
        rs.messages.clear()
        ws = rs.implied_system or coding.get("system") or ""
        if best.tried_code is None or v is True:
            best.tried_system, best.tried_code = coding.get("system"), coding["code"]
            best.tried_version = coding.get("version")
        if not best.tried_version and st.version:
            best.tried_version = st.version
        cc = _coding_text(ws, coding)
        codelist.append(f"'{cc}'")
        if v is False and not checker.internally_defined and mode == "codeableConcept":
            text = message("None_of_the_provided_codes_are_in_the_value_set_one", "",
                           checker.vurl, f"'{cc}'")
            rs.op.add("information", "code-invalid", f"{issue_path}.coding[{i}].code",
                      "None_of_the_provided_codes_are_in_the_value_set_one", text,
                      "this-code-not-in-vs")
        if ok is not True and v is not False:
            ok = v
        if v is True:
            _on_valid(checker, coding, st, path, mt, rs, best)
        elif not checker.settings.membership_only and ws:
            _on_invalid(checker, coding, ws, path, mode, issue_path, i, mt, rs, best, unknown_codes)
        if st.inactive or st.status:
            inactive = st if (inactive is None or v is True) else inactive
        if st.normal_form:
            rs.normal_form = st.normal_form
    if ok is False and not checker.internally_defined:
        _not_in_vs(checker, issue_path, coded, mode, codelist, mt, rs)
    elif not coded.get("coding") and checker.internally_defined:
        # A CodeableConcept with only text names no code for the code system to check.
        systems = [i.get("system") for i in vs.get("compose", {}).get("include", [])]
        text = (f"The CodeableConcept has no coding, so no code can be validated against the "
                f"code system '{systems[0] if systems else checker.vurl}'")
        mt.add(text)
        rs.op.add("error", "invalid", add_to_path(issue_path, "coding"), None, text, "invalid-data")
    return _answer(checker, coded, mode, ok, best, inactive, mt, rs, issue_path)


def _coding_text(system: str, coding: dict[str, Any]) -> str:
    """'system|version#code ('display')' as the not-in-value-set message quotes a coding."""
    text = f"{system}|{coding['version']}#{coding['code']}" if coding.get("version") \
        else f"{system}#{coding['code']}"
    if coding.get("display"):
        text += f" ('{coding['display']}')"
    return text


def _on_valid(checker: Checker, coding: dict[str, Any], st: CodingState, path: str,
              mt: _Messages, rs: RequestState, best: _Best) -> None:
    """A valid coding: content-mode note, display check, and what the answer reports."""
    if st.content_mode == "example":
        text = (f"The system {coding.get('system')} was found but did not contain enough "
                f"information to properly validate the code \"{coding['code']}\" "
                f"(\"{coding.get('display')}\") (mode = {st.content_mode})")
        mt.add(text)
        rs.op.add("warning", "not-found", path, None, text, "vs-invalid")
    elif coding.get("display") and st.displays.items:
        check_display(checker, st.displays, coding, path, mt, rs)
    if best.valid_code is not None:
        return  # the first valid coding is the one reported
    best.valid_system = coding.get("system") or rs.implied_system
    best.valid_code = coding["code"]
    if st.version:
        best.valid_version = st.version
    display = st.displays.preferred(checker.settings.languages) or st.displays.preferred([])
    if display:
        best.display = display


def _on_invalid(checker: Checker, coding: dict[str, Any], ws: str, path: str, mode: str,
                issue_path: str, i: int, mt: _Messages, rs: RequestState, best: _Best,
                unknown_codes: set[str]) -> None:
    """A coding not in the value set: is the code itself valid in its code system?"""
    if "://" not in ws and not ws.startswith("urn:"):
        text = message("Terminology_TX_System_Relative")
        p = {"coding": f"{issue_path}.system", "codeableConcept": f"{issue_path}.coding[{i}].system"}
        mt.append(text)
        rs.op.add("error", "invalid", p.get(mode, issue_path), "Terminology_TX_System_Relative",
                  text, "invalid-data")
    provider = checker.find_code_system(ws, coding.get("version"), rs.op, check=True)
    if provider is None:
        _system_not_found(checker, coding, ws, path, mt, rs)
        return
    checker.check_cs_status(rs.op, provider)
    concept = provider.locate(coding["code"])
    if concept is None:
        key = f"{ws}|{provider.version}#{coding['code']}"
        if key not in unknown_codes:
            unknown_codes.add(key)
            _unknown_code(checker.registry, provider, coding["code"], path, mt, rs)
        return
    displays = DisplayList()
    displays.add_concept(provider, concept, supplements_for(checker.settings.supplements, provider.url))
    display = displays.preferred(checker.settings.languages) or displays.preferred([])
    if display:
        best.display = display
    if coding.get("display"):
        _check_display_outside(checker, displays, provider, coding, path, mt, rs)
    if provider.version and mode != "codeableConcept":
        best.version = provider.version


def _unknown_code(registry: Registry, provider: CodeSystemProvider, code: str, path: str,
                  mt: _Messages, rs: RequestState) -> None:
    if fragment_may_hold(provider, code):
        text = message("UNKNOWN_CODE_IN_FRAGMENT", code, provider.url, provider.version)
        rs.op.add("warning", "code-invalid", add_to_path(path, "code"), "UNKNOWN_CODE_IN_FRAGMENT",
                  text, "invalid-code")
    else:
        mt.add(add_unknown_code(registry, rs.op, path, provider, code))


def _system_not_found(checker: Checker, coding: dict[str, Any], ws: str, path: str,
                      mt: _Messages, rs: RequestState) -> None:
    """The coding's system is unknown (or is a value set, or a supplement)."""
    system_path = add_to_path(path, "system")
    if checker.registry.value_set(ws) is not None:
        text = message("Terminology_TX_System_ValueSet2", ws)
        mt.add(text)
        rs.op.add("error", "invalid", system_path, "Terminology_TX_System_ValueSet2", text,
                  "invalid-data")
        return
    supplement = checker.registry.supplement(ws)
    if supplement is not None:
        text = message("CODESYSTEM_CS_NO_SUPPLEMENT", canonical(supplement))
        mt.add(text)
        rs.op.add("error", "invalid", system_path, "CODESYSTEM_CS_NO_SUPPLEMENT", text, "invalid-data")
        return
    text, mid, key = checker.unknown_system_message(
        ws, coding.get("version"), system_known=checker.registry.code_system(ws) is not None)
    if rs.unknown(key):
        rs.op.add("error", "not-found", system_path, mid, text, "not-found")
    mt.add(text)


def _not_in_vs(checker: Checker, issue_path: str, coded: dict[str, Any], mode: str,
               codelist: list[str], mt: _Messages, rs: RequestState) -> None:
    """The overall 'not in the value set' error."""
    if mode == "codeableConcept":
        mid = "TX_GENERAL_CC_ERROR_MESSAGE"
        text = message(mid, checker.vurl)
        path = ""
    else:
        mid = "None_of_the_provided_codes_are_in_the_value_set_one"
        text = message(mid, "", checker.vurl, ", ".join(codelist))
        path = f"{issue_path}.code" if issue_path else "code"
    if rs.op.add("error", "code-invalid", path, mid, text, "not-in-vs"):
        mt.add(text)


def _answer(checker: Checker, coded: dict[str, Any], mode: str, ok: bool | None, best: _Best,
            inactive: CodingState | None, mt: _Messages, rs: RequestState, issue_path: str) -> Answer:
    """Assemble the answer from what the codings showed."""
    ans = Answer(result=ok is True and not rs.op.has_errors)
    cc_mode = mode == "codeableConcept"
    if best.valid_system:
        ans.system = best.valid_system
    elif ok is True and rs.implied_system:
        ans.system = rs.implied_system
    elif best.tried_system and not cc_mode:
        ans.system = best.tried_system
    ans.unknown_key = "x-unknown-system" if ok is False else "x-caused-by-unknown-system"
    ans.unknown_systems = list(rs.unknown_systems)
    ans.normalized = rs.normal_form
    ans.code = best.valid_code or (best.tried_code if not cc_mode else None)
    ans.version = best.valid_version or (best.tried_version if not cc_mode else None) or \
        (best.version if not cc_mode else None)
    if best.display and ans.code:
        ans.display = best.display
    _status_issues(checker, ans, inactive, best, mt, rs, issue_path)
    for text in rs.op.error_texts():
        mt.add(text)
    ans.messages = list(mt)
    if cc_mode:
        ans.codeable_concept = coded
    if rs.op.issues:
        ans.issues = rs.op.resource()
    return ans


def _status_issues(checker: Checker, ans: Answer, st: CodingState | None, best: _Best,
                   mt: _Messages, rs: RequestState, issue_path: str) -> None:
    """inactive / deprecated concepts: flags on the answer and a warning."""
    if st is None:
        return
    code = best.valid_code or best.tried_code
    if st.inactive:
        ans.inactive = True
        if st.status and st.status != "inactive":
            ans.status = st.status
        shown = "inactive" if st.status in ("", "inactive") else f"{st.status} and inactive"
        text = message("INACTIVE_CONCEPT_FOUND", shown, code)
        mt.add(text)
        rs.op.add("warning", "business-rule", st.inactive_path, "INACTIVE_CONCEPT_FOUND", text,
                  "code-comment")
    elif st.status.lower() == "deprecated":
        ans.status = "deprecated"
        text = message("DEPRECATED_CONCEPT_FOUND", st.status, code)
        mt.add(text)
        rs.op.add("warning", "business-rule", issue_path, "DEPRECATED_CONCEPT_FOUND", text,
                  "code-comment")


# -- display checks -------------------------------------------------------------------------


def check_display(checker: Checker, displays: DisplayList, coding: dict[str, Any], path: str,
                  mt: _Messages, rs: RequestState) -> None:
    """A valid code with a display: is the display one of the concept's (for the languages)?"""
    s = checker.settings
    langs, display = s.languages, coding["display"]
    display_path = add_to_path(path, "display")
    found, difference = displays.has_display(langs, display)
    if found:
        _check_display_status(displays, coding, display_path, langs, rs)
        return
    base = "Display_Name_WS_for__should_be_one_of__instead_of" if difference == "normalized" \
        else "Display_Name_for__should_be_one_of__instead_of"
    mid = base
    severity = "warning" if s.display_warning else "error"
    count = displays.display_count(langs, True)
    if count == 0:
        severity = "warning"
        count = displays.display_count(langs, False)
    if count == 0:
        default = displays.preferred([])
        if not default:
            mid, text = "NO_VALID_DISPLAY_AT_ALL", message("NO_VALID_DISPLAY_AT_ALL", display,
                                                           coding.get("system"), coding["code"])
        elif displays.has_display([displays.def_lang] if displays.def_lang else [], display)[0]:
            # right for the code system's own language, just not for the one asked for
            mid = "NO_VALID_DISPLAY_FOUND_NONE_FOR_LANG_OK"
            text = message(mid, display, coding.get("system"), coding["code"], s.lang_summary, display)
            severity = "information"
        else:
            mid = "NO_VALID_DISPLAY_FOUND_NONE_FOR_LANG_ERR"
            text = message(mid, display, coding.get("system"), coding["code"], s.lang_summary, default)
            severity = "warning" if s.display_warning else "error"
    else:
        text = message(base + ("_one" if count == 1 else "_other"), count, coding.get("system"),
                       coding["code"], displays.present(langs), display, s.lang_summary)
    mt.add(text)
    rs.op.add(severity, "invalid", display_path, mid, text, "invalid-display")


def _check_display_status(displays: DisplayList, coding: dict[str, Any], display_path: str,
                          langs: list[str], rs: RequestState) -> None:
    """The display is known but only as an inactive (old) display."""
    found, _ = displays.has_display(langs, coding["display"], active_only=True)
    if found:
        return
    allowed = displays.allowed_displays()
    suffix = "_one" if len(allowed) == 1 else "_other"
    shown = ", ".join(f'"{a}"' for a in allowed)
    text = message("INACTIVE_DISPLAY_FOUND" + suffix, coding["display"], coding["code"], shown,
                   displays.status_of(coding["display"]))
    rs.op.add("warning", "invalid", display_path, "INACTIVE_DISPLAY_FOUND", text, "display-comment")


def _check_display_outside(checker: Checker, displays: DisplayList, provider: CodeSystemProvider,
                           coding: dict[str, Any], path: str, mt: _Messages,
                           rs: RequestState) -> None:
    """Display check for a code that is valid in its code system but not in the value set."""
    s = checker.settings
    langs, display = s.languages, coding["display"]
    found, difference = displays.has_display(langs, display, use_default=True)
    if found or not displays.items:
        return
    base = "Display_Name_WS_for__should_be_one_of__instead_of" if difference == "normalized" \
        else "Display_Name_for__should_be_one_of__instead_of"
    severity = "warning" if s.display_warning else "error"
    count = displays.display_count(langs, True)
    if count == 0:
        severity, base = "warning", "NO_VALID_DISPLAY_AT_ALL"
        text = message(base, display, provider.url, coding["code"])
    else:
        text = message(base + ("_one" if count == 1 else "_other"), count, provider.url,
                       coding["code"], displays.present(langs), display, s.lang_summary)
    mt.add(text)
    rs.op.add(severity, "invalid", add_to_path(path, "display"), base, text, "invalid-display")


# -- entry points ---------------------------------------------------------------------------


def prepare_error_answer(err: PrepareError, request: ValidateCodeRequest,
                         registry: Registry) -> dict[str, Any]:
    """result=false with the preparation problem as the one issue."""
    ans = Answer(result=False, messages=[err.issue.text])
    ans.issues = {"resourceType": "OperationOutcome", "issue": [err.issue.to_dict()]}
    coding = request.coded.get("coding", [{}])[0] if request.coded.get("coding") else {}
    if request.mode == "codeableConcept":
        ans.codeable_concept = request.coded
    elif coding:
        ans.system, ans.code = coding.get("system"), coding.get("code")
        ans.version = coding.get("version")
        if not ans.version and ans.system:
            provider = registry.code_system(ans.system)
            ans.version = provider.version if provider is not None else None
    if err.unknown_system:
        ans.unknown_systems = [err.unknown_system]
    return ans.parameters()


def validate_value_set(registry: Registry, request: ValidateCodeRequest,
                       instance: dict[str, Any] | None = None,
                       accept_language: str | None = None) -> dict[str, Any]:
    """ValueSet/$validate-code: is the code (Coding, CodeableConcept) in the value set?"""
    options = request_options(request)
    value_set = resolve_target_value_set(registry, request, instance, options)
    settings = checker_settings(registry, request, options, accept_language, value_set)
    checker = Checker(registry, value_set, settings)
    try:
        checker.prepare()
    except PrepareError as err:
        return prepare_error_answer(err, request, registry)
    return check_coded(checker, ISSUE_PATHS[request.mode], request.coded, request.mode).parameters()




# -- CodeSystem/$validate-code --------------------------------------------------------------


def _system_path(mode: str) -> str:
    return {"code": "system", "coding": "Coding.system"}.get(mode, "CodeableConcept.coding[0].system")


def _unknown_code_system(registry: Registry, url: str, version: str | None,
                         mode: str) -> PrepareError:
    """The PrepareError for a code system (version) the server does not have."""
    if version:
        known = [v for v in registry.code_system_versions(url) if v]
        mid = "UNKNOWN_CODESYSTEM_VERSION" if known else "UNKNOWN_CODESYSTEM_VERSION_NONE"
        text = message(mid, url, version, version_list(known))
        key = f"{url}|{version}" if known else url
    else:
        mid, text, key = "UNKNOWN_CODESYSTEM", message("UNKNOWN_CODESYSTEM", url), url
    return PrepareError(Issue("error", "not-found", text, [_system_path(mode)], "not-found", mid), key)


def resolve_validation_code_system(registry: Registry, request: ValidateCodeRequest,
                                   instance: dict[str, Any] | None,
                                   options: ComposeOptions) -> CodeSystemProvider:
    """The code system to validate against: instance, inline codeSystem, url or the coding's system."""
    if request.code_system is not None:
        # Validated and indexed once per distinct content (the HTTP face, fhir/invoke.py, checked it already).
        inline = request_resource(request.code_system, "codeSystem", "codeSystem")
        if isinstance(inline, dict):  # a supplement holds no codes of its own
            raise BadRequest("The codeSystem parameter is a supplement; send the code system it "
                             "supplements", expression="codeSystem")
        return inline
    coding = (request.coded.get("coding") or [{}])[0]
    url = (instance or {}).get("url") or request.url or coding.get("system")
    version = (instance or {}).get("version") or request.version or coding.get("version")
    if not url:
        text = message("Coding_has_no_system__cannot_validate")
        raise PrepareError(Issue("warning", "invalid", text, [], "invalid-data",
                                 "Coding_has_no_system__cannot_validate"))
    rules = VersionRules(options)
    version = rules.determine(url, version)
    provider = registry.code_system(url, version)
    if provider is None:
        supplement = registry.supplement(url)
        if supplement is not None:
            text = message("CODESYSTEM_CS_NO_SUPPLEMENT", canonical(supplement))
            raise PrepareError(Issue("error", "invalid", text, [_system_path(request.mode)],
                                     "invalid-data", "CODESYSTEM_CS_NO_SUPPLEMENT"), url)
        if registry.value_set(url) is not None:
            text = message("Terminology_TX_System_ValueSet2", url)
            raise PrepareError(Issue("error", "invalid", text, [_system_path(request.mode)],
                                     "invalid-data", "Terminology_TX_System_ValueSet2"))
        raise _unknown_code_system(registry, url, version, request.mode)
    return provider


def validate_code_system(registry: Registry, request: ValidateCodeRequest,
                         instance: dict[str, Any] | None = None,
                         accept_language: str | None = None) -> dict[str, Any]:
    """CodeSystem/$validate-code: is the code valid in the code system (and its display right)?"""
    options = request_options(request)
    try:
        provider = resolve_validation_code_system(registry, request, instance, options)
    except PrepareError as err:
        return prepare_error_answer(err, request, registry)
    if request.code_system is not None:
        registry = registry.overlay()
        registry.add_code_system(provider)
    include: dict[str, Any] = {"system": provider.url}
    value_set: dict[str, Any] = {
        "resourceType": "ValueSet", "status": "active",
        "url": provider.resource.get("valueSet") or f"{provider.url}/vs",
        "compose": {"include": [include]},
    }
    if provider.version:
        include["version"] = value_set["version"] = provider.version
    settings = checker_settings(registry, request, options, accept_language, None)
    checker = Checker(registry, value_set, settings, internally_defined=True)
    return check_coded(checker, ISSUE_PATHS[request.mode], request.coded, request.mode).parameters()


# -- HTTP handlers (registered in terminology/operations/__init__.py) -----------------------------------


def handle_cs_validate(ctx: OperationContext) -> dict[str, Any]:
    """CodeSystem/$validate-code (type and instance level)."""
    request = validate_code_request(ctx.bag, for_code_system=True)
    instance = _instance(ctx, "CodeSystem")
    if instance is not None:
        request = instance_supplies_system(request, instance)
    return validate_code_system(ctx.registry, request, instance, ctx.accept_language)


def instance_supplies_system(request: ValidateCodeRequest,
                             instance: dict[str, Any]) -> ValidateCodeRequest:
    """CodeSystem/{id}/$validate-code?code=X: the instance is the code's system (and version)."""
    coding = (request.coded.get("coding") or [{}])[0]
    if request.mode != "code" or coding.get("system") or not instance.get("url"):
        return request
    filled = {**coding, "system": instance["url"]}
    if instance.get("version") and not coding.get("version"):
        filled["version"] = instance["version"]
    return replace(request, coded={"coding": [filled]})


def handle_vs_validate(ctx: OperationContext) -> dict[str, Any]:
    """ValueSet/$validate-code (type and instance level)."""
    request = validate_code_request(ctx.bag, for_code_system=False)
    return validate_value_set(ctx.registry, request, _instance(ctx, "ValueSet"),
                              ctx.accept_language)


def _instance(ctx: OperationContext, rtype: str) -> dict[str, Any] | None:
    """The instance resource for /{type}/{id}/$validate-code (a ValueSet in full)."""
    if ctx.instance is None:
        return None
    if rtype == "ValueSet":
        found = ctx.registry.value_set(ctx.instance.get("url", ""), ctx.instance.get("version"))
        return found or ctx.instance
    return ctx.instance
