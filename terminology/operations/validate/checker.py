"""The value set checker behind $validate-code: is system|code in this value set, and why not.

The value set is walked include by include (R4 ValueSet.compose: some include selects the code
and no exclude does) rather than expanded, so validating against a huge value set costs one
lookup per include. The walk follows tx.fhir.org's rules for which code system version an
include uses, which issues each path produces and how they are worded, because clients (the
FHIR validator) act on those codes and texts.
"""

from __future__ import annotations

from typing import Any

from terminology.errors import FhirError, Issue, NotFound, Unprocessable
from terminology.operations.releases.history import code_history
from terminology.operations.validate.displays import working_languages
from terminology.operations.validate.infer import determine_system
from terminology.operations.validate.messages import message, version_list
from terminology.operations.validate.outcome import Outcome, PrepareError, add_to_path
from terminology.operations.validate.state import (
    CodingState,
    RequestState,
    Settings,
    VersionRules,
    concept_status,
    more_detailed,
    standards_status,
    vurl,
)
from terminology.params import ValidateCodeRequest
from terminology.providers.base import CodeSystemProvider, Concept
from terminology.registry import Registry, split_canonical, version_key, version_matches
from terminology.valuesets.compose import (
    ComposeOptions,
    compile_filters,
    resolve_value_set,
    value_set_parameters,
    walk_contains,
)
from terminology.valuesets.supplements import (
    named_supplements,
    require_supplements,
    supplements_for,
)

INCLUDE_KINDS = ("complete", "fragment")
VS_DEPRECATED_EXT = "http://hl7.org/fhir/StructureDefinition/valueset-deprecated"


class Checker:
    """Checks codes against one value set (tx.fhir.org's ValueSetChecker)."""

    def __init__(self, registry: Registry, value_set: dict[str, Any], settings: Settings,
                 internally_defined: bool = False) -> None:
        self.registry = registry
        self.value_set = value_set
        self.settings = settings
        self.rules = VersionRules(settings.options)
        self.internally_defined = internally_defined
        self.others: dict[str, Checker] = {}
        self.vurl = vurl(value_set)

    # -- preparation -----------------------------------------------------------------------

    def prepare(self, stack: tuple[str, ...] = ()) -> None:
        """Resolve imports (recursively) and reject broken filters before checking anything."""
        compose = self.value_set.get("compose") or {}
        for kind in ("include", "exclude"):
            for i, cset in enumerate(compose.get(kind, [])):
                self._prepare_set(f"{kind}[{i}]", cset, (*stack, self.vurl))

    def _prepare_set(self, desc: str, cset: dict[str, Any], stack: tuple[str, ...]) -> None:
        for ref in cset.get("valueSet", []):
            key = self.pin(ref)
            if key in self.others:
                continue
            other = self.find_import(key)
            if other is None:
                text = message("Unable_to_resolve_value_Set_", key)
                raise PrepareError(Issue("error", "not-found", text, [], "not-found",
                                         "Unable_to_resolve_value_Set_"))
            checker = Checker(self.registry, other, self.settings)
            if vurl(other) in stack:  # an import cycle would recurse forever when checking
                raise Unprocessable(
                    f"Found a circularity pointing to {vurl(other)} processing ValueSet with "
                    f"pathway [{', '.join(stack)}]",
                    message_id="VALUESET_CIRCULAR_REFERENCE", tx_code="vs-invalid")
            checker.prepare(stack)
            self.others[key] = checker
        if not cset.get("system"):
            return
        version = self.rules.determine(cset["system"], cset.get("version"))
        provider = self.registry.code_system(cset["system"], version)
        for j, f in enumerate(cset.get("filter", [])):
            if f.get("value") in (None, ""):
                raise FhirError(
                    message_for_filter(cset["system"], f), code="invalid",
                    expression=f"ValueSet.compose.{desc}.filter[{j}]", tx_code="vs-invalid",
                    message_id="UNABLE_TO_HANDLE_SYSTEM_FILTER_WITH_NO_VALUE", status=400)
        if provider is not None and cset.get("filter"):
            compile_filters(provider, cset, f"ValueSet.compose.{desc}")

    def find_import(self, key: str) -> dict[str, Any] | None:
        """An imported value set: '#id' names a contained one, else url|version."""
        if key.startswith("#"):
            return next((c for c in self.value_set.get("contained", [])
                         if c.get("resourceType") == "ValueSet" and c.get("id") == key[1:]), None)
        base, version = split_canonical(key)
        return self.registry.value_set(base, version)

    def pin(self, ref: str) -> str:
        """An import reference with the default-valueset-version applied."""
        if ref.startswith("#"):
            return ref
        base, version = split_canonical(ref)
        version = version or self.settings.options.default_valueset_versions.get(base)
        return f"{base}|{version}" if version else base

    # -- finding code systems --------------------------------------------------------------

    def find_code_system(self, url: str, version: str | None, op: Outcome | None = None,
                         check: bool = False) -> CodeSystemProvider | None:
        """The provider for url|version (version rules applied), checking check-system-version."""
        version = self.rules.determine(url, version)
        provider = self.registry.code_system(url, version)
        if provider is not None and provider.content not in (*INCLUDE_KINDS, "example"):
            provider = None
        if provider is not None and check:
            self.rules.check(provider, op)
        return provider

    def known_versions(self, url: str) -> list[str]:
        """Known versions of a code system, as strings, oldest first."""
        return [v for v in self.registry.code_system_versions(url) if v]

    def unknown_system_message(self, system: str, version: str | None,
                               system_known: bool = False) -> tuple[str, str, str]:
        """(text, message id, once-only key) for 'code system (version) not found': the
        version wording when a version was asked for or the system itself is known."""
        if not version and not system_known:
            return message("UNKNOWN_CODESYSTEM", system), "UNKNOWN_CODESYSTEM", system
        known = self.known_versions(system)
        mid = "UNKNOWN_CODESYSTEM_VERSION" if known else "UNKNOWN_CODESYSTEM_VERSION_NONE"
        key = f"{system}|{version}" if known else system
        return message(mid, system, version, version_list(known)), mid, key

    def unknown_system_issue(self, rs: RequestState, path: str, system: str,
                             version: str | None) -> None:
        """The 'code system not found' issue (once per system|version)."""
        text, mid, key = self.unknown_system_message(system, version)
        rs.messages.append(text)
        if rs.unknown(key):
            rs.op.add("error", "not-found", add_to_path(path, "system"), mid, text, "not-found")

    # -- status of the resources used ------------------------------------------------------

    def check_canonical_status(self, op: Outcome, rtype: str, resource: dict[str, Any],
                               canonical: str) -> None:
        """Information issues for draft/experimental/retired/deprecated/withdrawn content."""
        standards = standards_status(resource)
        status = resource.get("status")
        source = self.value_set
        mid = None
        if standards == "deprecated":
            mid = "MSG_DEPRECATED"
        elif standards == "withdrawn":
            mid = "MSG_WITHDRAWN"
        elif status == "retired":
            mid = "MSG_RETIRED"
        elif resource.get("experimental") and not source.get("experimental"):
            mid = "MSG_EXPERIMENTAL"
        elif (status == "draft" or standards == "draft") and not (
                source.get("status") == "draft" or standards_status(source) == "draft"):
            mid = "MSG_DRAFT"
        if mid:
            op.add("information", "business-rule", None, mid, message(mid, canonical, "", rtype),
                   "status-check")

    def check_cs_status(self, op: Outcome, provider: CodeSystemProvider) -> None:
        """Status issues for a code system used."""
        canonical = f"{provider.url}|{provider.version}" if provider.version else provider.url
        self.check_canonical_status(op, "CodeSystem", provider.resource, canonical)

    # -- the check ---------------------------------------------------------------------------

    def check(self, path: str, system: str | None, version: str | None, code: str,
              cs_state: CodingState, rs: RequestState) -> bool | None:
        """Whether system|code is in the value set: True, False, or None (system unknown)."""
        if not system and not self.settings.infer_system:
            text = message("Coding_has_no_system__cannot_validate")
            rs.messages.append(text)
            rs.op.add("warning", "invalid", path, "Coding_has_no_system__cannot_validate", text,
                      "invalid-data")
            return False
        if not system:
            system = determine_system(self.registry, self.value_set, self.settings.options, self.vurl, code, path, rs)
            if not system:
                return False
            rs.implied_system = system
        compose = self.value_set.get("compose")
        if compose is not None:
            return self._check_compose(path, system, version, code, compose, cs_state, rs)
        return self._check_expansion(path, system, version, code, cs_state, rs)

    def _check_compose(self, path: str, system: str, version: str | None, code: str,
                       compose: dict[str, Any], st: CodingState, rs: RequestState) -> bool | None:
        result: bool | None = False
        includes = ordered_includes(compose.get("include", []), system, version)
        chosen = self._choose_version_include(path, system, code, includes, st)
        if chosen is not None:
            includes = [chosen, *(i for i in includes if i.get("system") != system)]
        for cset in includes:
            result = self._check_include(path, system, version, code, cset, st, rs)
            if result is None:
                return None
            if result is True:
                break
        if result is not True:
            return result
        for cset in compose.get("exclude", []):
            if self._excluded(path, system, version, code, cset, st, rs):
                return False
        return True

    def _check_include(self, path: str, system: str, version: str | None, code: str,
                       cset: dict[str, Any], st: CodingState, rs: RequestState) -> bool | None:
        result: bool | None
        if not cset.get("system"):
            result = True
        elif cset["system"] == system:
            if version and self._other_include_has_version(system, cset, version):
                return False  # the include for the coding's version decides
            v = self.determine_version(path, system, cset.get("version"), version, rs)
            provider = self.find_code_system(system, v, rs.op, check=True)
            if provider is None:
                if self.settings.membership_only:
                    return False
                self.unknown_system_issue(rs, path, system, self.rules.determine(system, v))
                return None
            self.check_cs_status(rs.op, provider)
            st.version, st.content_mode = provider.version, provider.content
            st.displays.def_lang = provider.language  # None: the displays have no language
            result = self.check_concept_set(path, provider, cset, code, st, rs)
        else:
            result = False
        for ref in cset.get("valueSet", []):
            other = self.others[self.pin(ref)]
            self.check_canonical_status(rs.op, "ValueSet", other.value_set, other.vurl)
            if result is True:
                result = other.check(path, system, version, code, st, rs)
        return result

    def _choose_version_include(self, path: str, system: str, code: str,
                                includes: list[dict[str, Any]],
                                st: CodingState) -> dict[str, Any] | None:
        """A value set mixing versions of the coding's system (and no version in the coding):
        the include to use is the newest one where the code is valid and its display right,
        else the newest where the code is valid, else the newest."""
        same = [i for i in includes if i.get("system") == system and not i.get("valueSet")]
        if len(same) < 2 or st.version_given:
            return None
        first_valid = None
        for cset in same:
            trial, trial_rs = CodingState(), RequestState()
            if self._check_include(path, system, None, code, cset, trial, trial_rs) is not True:
                continue
            if trial_rs.op.has_errors:
                continue
            wanted = st.wanted_display
            if not wanted or trial.displays.has_display(self.settings.languages, wanted)[0]:
                return cset
            first_valid = first_valid or cset
        return first_valid or same[0]

    def _other_include_has_version(self, system: str, cset: dict[str, Any], version: str) -> bool:
        """Whether another include pins `system` to the coding's version (this one does not)."""
        if cset.get("version") in (None, version) or version_matches(cset["version"], version):
            return False
        includes = (self.value_set.get("compose") or {}).get("include", [])
        return any(i is not cset and i.get("system") == system and i.get("version")
                   and (i["version"] == version or version_matches(i["version"], version))
                   for i in includes)

    def _excluded(self, path: str, system: str, version: str | None, code: str,
                  cset: dict[str, Any], st: CodingState, rs: RequestState) -> bool:
        excluded = True
        if cset.get("system"):
            provider = self.find_code_system(cset["system"], cset.get("version"))
            if provider is None or provider.url != system:
                excluded = False
            else:
                probe = CodingState()
                excluded = self.check_concept_set(path, provider, cset, code, probe,
                                                  RequestState(), role="not in")
        for ref in cset.get("valueSet", []):
            other = self.others[self.pin(ref)]
            excluded = excluded and other.check(path, system, version, code, CodingState(),
                                                RequestState()) is True
        return excluded

    def _check_expansion(self, path: str, system: str, version: str | None, code: str,
                         st: CodingState, rs: RequestState) -> bool | None:
        """A value set that has only an expansion: find the code among its contains."""
        contains = self.value_set.get("expansion", {}).get("contains", [])
        item = next((c for c in walk_contains(contains)
                     if c.get("code") == code and c.get("system") == system), None)
        if item is None:
            return False
        v = item.get("version") or version
        provider = self.find_code_system(system, v)
        if provider is None:
            if self.settings.membership_only:
                return False
            self.unknown_system_issue(rs, path, system, v)
            return None
        st.version, st.content_mode = provider.version, provider.content
        concept = provider.locate(code)
        if concept is None:
            return False
        st.displays.add_concept(provider, concept, supplements_for(self.settings.supplements, provider.url))
        st.inactive, st.inactive_path, st.status = concept.inactive, path, concept_status(concept)
        return True

    # -- versions ----------------------------------------------------------------------------

    def determine_version(self, path: str, system: str, version_vs: str | None,
                          version_coding: str | None, rs: RequestState) -> str | None:
        """The code system version an include uses for a coding, with mismatch issues."""
        result = self.rules.determine(system, version_vs)
        if not version_coding:
            return result
        if result and version_coding != result and more_detailed(result, version_coding):
            result = version_coding
        if not result and any(v == version_coding or more_detailed(version_coding, v)
                              for v in self.known_versions(system)):
            result = version_coding
        provider = self.find_code_system(system, result)
        if provider is not None and provider.version != version_coding and \
                not more_detailed(version_coding, provider.version):
            self._version_mismatch(path, system, provider, result, version_vs, version_coding, rs)
        elif provider is None and result != version_coding:
            text = message("VALUESET_VALUE_MISMATCH", system, result, version_coding)
            rs.op.add("error", "invalid", add_to_path(path, "version"), "VALUESET_VALUE_MISMATCH",
                      text, "vs-invalid")
            rs.messages.append(text)
        return result

    def _version_mismatch(self, path: str, system: str, provider: CodeSystemProvider,
                          result: str | None, version_vs: str | None, version_coding: str,
                          rs: RequestState) -> None:
        level = "error"
        if not result:
            level = "warning"
            mid = "VALUESET_VALUE_MISMATCH_DEFAULT"
            text = message(mid, system, provider.version, version_vs, version_coding)
        elif result != version_vs:
            mid = "VALUESET_VALUE_MISMATCH_CHANGED"
            text = message(mid, system, result, version_vs or "", version_coding)
        else:
            mid = "VALUESET_VALUE_MISMATCH"
            text = message(mid, system, version_vs, version_coding)
        rs.op.add(level, "invalid", add_to_path(path, "version"), mid, text, "vs-invalid")
        if level == "error":
            rs.messages.append(text)
        if self.registry.code_system(system, version_coding) is None:
            known = self.known_versions(system)
            rs.unknown(f"{system}|{version_coding}")
            text = message("UNKNOWN_CODESYSTEM_VERSION", system, version_coding, version_list(known))
            rs.op.add("error", "not-found", add_to_path(path, "system"), "UNKNOWN_CODESYSTEM_VERSION",
                      text, "not-found")
            rs.messages.append(text)

    # -- one include -------------------------------------------------------------------------

    def check_concept_set(self, path: str, provider: CodeSystemProvider, cset: dict[str, Any],
                          code: str, st: CodingState, rs: RequestState, role: str = "in") -> bool:
        """Whether the include (or exclude) `cset` selects `code` from `provider`."""
        st.inactive = False
        if "concept" not in cset and "filter" not in cset:
            return self._check_whole_system(path, provider, code, st, rs)
        for raw in cset.get("concept", []):
            if raw.get("code") == code:
                concept = provider.locate(code)
                if concept is not None:
                    return self._check_listed(path, provider, concept, raw, st, rs)
        if cset.get("filter"):
            return self._check_filters(path, provider, cset, code, st, rs)
        return False

    def _unknown_code(self, path: str, provider: CodeSystemProvider, code: str,
                      rs: RequestState) -> bool:
        """The issue for a code the code system does not have; True for a fragment."""
        if self.settings.membership_only:
            return False
        if fragment_may_hold(provider, code):
            text = message("UNKNOWN_CODE_IN_FRAGMENT", code, provider.url, provider.version)
            rs.op.add("warning", "code-invalid", add_to_path(path, "code"),
                      "UNKNOWN_CODE_IN_FRAGMENT", text, "invalid-code")
            return True
        add_unknown_code(self.registry, rs.op, path, provider, code)
        return False

    def _check_whole_system(self, path: str, provider: CodeSystemProvider, code: str,
                            st: CodingState, rs: RequestState) -> bool:
        concept = provider.locate(code)
        if concept is None:
            return self._unknown_code(path, provider, code, rs)
        self._case_difference(path, provider, concept, code, st, rs)
        st.displays.add_concept(provider, concept, supplements_for(self.settings.supplements, provider.url))
        return self._accept(path, provider, concept, st, rs)

    def _case_difference(self, path: str, provider: CodeSystemProvider, concept: Concept,
                         code: str, st: CodingState, rs: RequestState) -> None:
        if concept.code == code:
            return
        canonical = f"{provider.url}|{provider.version}" if provider.version else provider.url
        text = message("CODE_CASE_DIFFERENCE", code, concept.code, canonical)
        rs.op.add("information", "business-rule", add_to_path(path, "code"), "CODE_CASE_DIFFERENCE",
                  text, "code-rule")
        st.normal_form = concept.code

    def _accept(self, path: str, provider: CodeSystemProvider, concept: Concept, st: CodingState,
                rs: RequestState) -> bool:
        """The code is selected: apply the abstract and inactive rules."""
        code_path = add_to_path(path, "code")
        if not self.settings.abstract_ok and concept.abstract:
            if not self.settings.membership_only:
                text = message("ABSTRACT_CODE_NOT_ALLOWED", provider.url, concept.code)
                rs.op.add("error", "business-rule", code_path, "ABSTRACT_CODE_NOT_ALLOWED", text,
                          "code-rule")
            return False
        if concept.inactive and (self.excludes_inactive() or self.settings.active_only):
            text = message("STATUS_CODE_WARNING_CODE", "not active", concept.code)
            rs.op.add("error", "business-rule", code_path, "STATUS_CODE_WARNING_CODE", text, "code-rule")
            rs.messages.append(text)
            st.inactive, st.inactive_path, st.status = True, path, concept_status(concept)
            return False
        st.inactive, st.inactive_path, st.status = concept.inactive, path, concept_status(concept)
        return True

    def _check_listed(self, path: str, provider: CodeSystemProvider, concept: Concept,
                      raw: dict[str, Any], st: CodingState, rs: RequestState) -> bool:
        st.displays.add_concept(provider, concept, supplements_for(self.settings.supplements, provider.url))
        st.displays.add_include_concept(raw, self.value_set.get("language"))
        if not self._accept(path, provider, concept, st, rs):
            return False
        status = standards_status(raw)
        if status not in ("withdrawn", "deprecated") and any(
                e.get("url") == VS_DEPRECATED_EXT for e in raw.get("extension", [])):
            status = "deprecated"
        if status in ("withdrawn", "deprecated"):
            text = message("CONCEPT_DEPRECATED_IN_VALUESET", provider.url, concept.code, status,
                           self.vurl)
            rs.op.add("warning", "business-rule", add_to_path(path, "code"),
                      "CONCEPT_DEPRECATED_IN_VALUESET", text, "code-comment")
        return True

    def _check_filters(self, path: str, provider: CodeSystemProvider, cset: dict[str, Any],
                       code: str, st: CodingState, rs: RequestState) -> bool:
        filters = compile_filters(provider, cset, "ValueSet.compose.include")
        concept = provider.locate(code)
        if concept is None or not all(f.matches(concept) for f in filters):
            return False
        st.displays.add_concept(provider, concept, supplements_for(self.settings.supplements, provider.url))
        return self._accept(path, provider, concept, st, rs)

    def excludes_inactive(self) -> bool:
        """compose.inactive = false: inactive codes are not members."""
        compose = self.value_set.get("compose") or {}
        return compose.get("inactive") is False


def ordered_includes(includes: list[dict[str, Any]], system: str,
                     version: str | None) -> list[dict[str, Any]]:
    """Includes in the order they are tried: several versions of the coding's system (a value set
    mixing versions) are tried newest first, so the newest version holding the code answers."""
    if version or sum(1 for i in includes if i.get("system") == system) < 2:
        return includes
    same = sorted((i for i in includes if i.get("system") == system),
                  key=lambda i: version_key(i.get("version")), reverse=True)
    it = iter(same)
    return [next(it) if i.get("system") == system else i for i in includes]


def message_for_filter(system: str, f: dict[str, Any]) -> str:
    """The 'filter has no value' text."""
    return (f"The system {system} filter with property = {f.get('property')}, "
            f"op = {f.get('op')} has no value")


def fragment_may_hold(provider: CodeSystemProvider, code: str) -> bool:
    """Whether a code missing from a non-complete code system may still be a real code.

    A fragment lacking a code is no proof the code is wrong (a warning), unless the provider's
    grammar already rules it out (a CPT expression breaking a modifier rule is an error even
    when only a fragment of CPT is loaded).
    """
    if provider.content == "complete":
        return False
    grammar_error = getattr(provider, "grammar_error", None)
    return grammar_error is None or grammar_error(code) is None


def unknown_code_message(provider: CodeSystemProvider, code: str) -> tuple[str, str]:
    """(message id, text) for a code the provider does not hold.

    A provider with a grammar (CPT modifier expressions) can say why an expression is invalid;
    that explanation replaces the generic text.
    """
    explain = getattr(provider, "explain_unknown", None)
    mid = "Unknown_Code_in_Version" if provider.version else "Unknown_Code_in"
    if explain is not None:
        reason = explain(code)
        if reason:
            return mid, reason
    return mid, message(mid, code, provider.url, provider.version)


def add_unknown_code(registry: Registry, op: Outcome, path: str, provider: CodeSystemProvider,
                     code: str) -> str:
    """Record the error for a code the provider does not hold, with the code's history in
    the other loaded releases (operations.releases.history) when it has one; the error's text."""
    mid, text = unknown_code_message(provider, code)
    history = code_history(registry, provider, code)
    if history is not None:
        text += history.note()
    op.add("error", "code-invalid", add_to_path(path, "code"), mid, text, "invalid-code")
    if history is not None:
        op.add_issue(history.issue(add_to_path(path, "code")))
    return text


def resolve_target_value_set(registry: Registry, request: ValidateCodeRequest,
                             instance: dict[str, Any] | None,
                             options: ComposeOptions) -> dict[str, Any]:
    """The value set to validate against: instance, inline valueSet, or url(+valueSetVersion)."""
    if instance is not None:
        return instance
    if request.value_set is not None:
        return request.value_set
    if not request.url:
        raise FhirError("No ValueSet specified - provide url parameter or valueSet resource",
                        expression="url")
    base, embedded = split_canonical(request.url)
    version = request.value_set_version or embedded
    try:
        return resolve_value_set(registry, base, version, options)
    except NotFound as e:
        shown = f"{base}|{version}" if version else base
        raise NotFound(message("Unable_to_resolve_value_Set_", shown),
                       message_id="Unable_to_resolve_value_Set_", tx_code="not-found") from e


def checker_settings(registry: Registry, request: ValidateCodeRequest, options: ComposeOptions,
                     accept_language: str | None, value_set: dict[str, Any] | None) -> Settings:
    """Settings for a request: languages from displayLanguage, the value set's own
    displayLanguage parameter, the Accept-Language header, or the value set's language."""
    stated = value_set_parameters(value_set)
    vs_language = (value_set or {}).get("language")
    raw = request.display_language or stated.get("displayLanguage") or accept_language or vs_language
    return Settings(
        options=options, languages=working_languages(raw), lang_summary=raw or "--",
        abstract_ok=request.abstract_ok, active_only=request.active_only,
        infer_system=request.infer_system, display_warning=request.lenient_display,
        membership_only=request.membership_only,
        supplements=require_supplements(registry, named_supplements(request.use_supplements, value_set)),
    )
