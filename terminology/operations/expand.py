"""ValueSet/$expand: a ValueSet dict with an expansion, built from the compose engine.

The compose engine (terminology.valuesets.compose) decides membership and order; this module applies
the request's presentation parameters (text filter, paging, nesting, displays in the asked
language, designations, properties) and renders the R4 expansion as a plain dict.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from terminology.cpt import CPT_URL
from terminology.errors import BadRequest, NotFound, TooCostly
from terminology.operations.context import OperationContext
from terminology.params import ExpandRequest, expand_request
from terminology.providers.base import Concept, Designation
from terminology.providers.filters import Deadline
from terminology.registry import Registry, split_canonical
from terminology.settings import Settings
from terminology.valuesets.compose import (
    STANDARDS_STATUS_EXT,
    ComposeOptions,
    Expansion,
    ExpansionEntry,
    expand_compose,
    nest_entries,
    request_options,
    resolve_value_set,
    too_costly,
    value_set_parameters,
    vs_canonical,
)
from terminology.valuesets.languages import language_matches, parse_languages
from terminology.valuesets.supplements import (
    canonical,
    missing_supplement_error,
    named_supplements,
    require_supplements,
    supplement_concepts,
)

EXP_PROPERTY_EXT = "http://hl7.org/fhir/5.0/StructureDefinition/extension-ValueSet.expansion.property"
CONTAINS_PROPERTY_EXT = "http://hl7.org/fhir/5.0/StructureDefinition/extension-ValueSet.expansion.contains.property"
UNCLOSED_EXT = "http://hl7.org/fhir/StructureDefinition/valueset-unclosed"
UNCLOSED_REASON_EXT = "http://hl7.org/fhir/StructureDefinition/valueset-unclosed-reason"
CONCEPT_PROPERTIES = "http://hl7.org/fhir/concept-properties#"
BCP47 = "urn:ietf:bcp:47"
PREFERRED_FOR_LANGUAGE = {
    "system": "http://terminology.hl7.org/CodeSystem/hl7TermMaintInfra",
    "code": "preferredForLanguage",
    "display": "Preferred For Language",
}
# Value set elements an expansion does not repeat (compose only with includeDefinition).
# tx.fhir.org does not repeat the description either.
DROPPED_ELEMENTS = frozenset({"text", "expansion", "compose", "meta", "description"})


@dataclass
class Presentation:
    """How entries are rendered: languages, designations and properties asked for."""

    languages: list[str]
    fallback: bool  # False when the client said '*; q=0': no display in another language
    include_designations: bool
    designation_filters: list[tuple[str | None, str]]  # (system or None, code/language)
    properties: list[str]
    used_properties: list[str] = field(default_factory=list)  # filled while rendering
    # supplement concepts by (base system, code), and the supplement resources applied
    supplements: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    supplement_resources: list[dict[str, Any]] = field(default_factory=list)


# -- choosing the value set and the options ---------------------------------------------------


def target_value_set(registry: Registry, request: ExpandRequest,
                     instance: dict[str, Any] | None = None) -> dict[str, Any]:
    """The value set to expand: the instance, an inline valueSet, or url (+valueSetVersion)."""
    if instance is not None:
        return instance
    if request.value_set is not None:
        if request.value_set.get("resourceType") != "ValueSet":
            raise BadRequest("The parameter 'valueSet' must carry a ValueSet", expression="valueSet")
        return request.value_set
    if request.url:
        options = ComposeOptions(default_valueset_versions=request.default_valueset_versions)
        try:
            return resolve_value_set(registry, request.url, request.value_set_version, options)
        except NotFound as e:
            e.issues[0].expression = ["url"]  # the parameter that named it
            raise
    raise BadRequest("$expand needs a value set: 'url', 'valueSet' or an instance id", expression="url")


# valueset-expansion-parameter names we honour -> (ExpandRequest field, echoed value key)
VS_DEFAULTS = {
    "displayLanguage": ("display_language", "valueCode"),
    "activeOnly": ("active_only", "valueBoolean"),
    "includeDesignations": ("include_designations", "valueBoolean"),
    "includeDefinition": ("include_definition", "valueBoolean"),
    "excludeNested": ("exclude_nested", "valueBoolean"),
    "excludeNotForUI": ("exclude_not_for_ui", "valueBoolean"),
}


def apply_value_set_defaults(request: ExpandRequest, value_set: dict[str, Any]) -> ExpandRequest:
    """Expansion parameters the value set itself sets (valueset-expansion-parameter extension
    on compose), for those the request does not send; they are echoed like sent ones."""
    sent = {p["name"] for p in request.echo}
    changes: dict[str, Any] = {}
    echo = list(request.echo)
    for name, value in value_set_parameters(value_set).items():
        if name == "versionsMatch" and request.versions_match is None and value is not None:
            # not echoed as sent: the expansion reports versionsMatch when it merged versions
            changes["versions_match"] = _as_bool(value)
            continue
        if name not in VS_DEFAULTS or name in sent or value is None:
            continue
        attr, key = VS_DEFAULTS[name]
        if key == "valueBoolean":
            value = _as_bool(value)
        changes[attr] = value
        echo.append({"name": name, key: value})
    if not changes:
        return request
    return replace(request, echo=echo, **changes)


def _as_bool(value: Any) -> bool:
    """A boolean parameter stated as valueBoolean or as a string ('true')."""
    return value if isinstance(value, bool) else str(value).lower() == "true"


def resolve_supplements(registry: Registry, expansion: Expansion, request: ExpandRequest,
                        value_set: dict[str, Any]) -> list[dict[str, Any]]:
    """The supplements asked for, each for a system the expansion uses; 4xx if one is not."""
    named = named_supplements(request.use_supplements, value_set)
    found = require_supplements(registry, named)
    systems = {split_canonical(u)[0] for u in expansion.used_systems}
    unused = [ref for ref, sup in zip(named, found, strict=True)
              if split_canonical(sup.get("supplements", ""))[0] not in systems]
    if unused:
        raise missing_supplement_error(unused)
    return found


def compose_options(request: ExpandRequest, settings: Settings) -> ComposeOptions:
    """The membership-affecting parameters of the request."""
    return request_options(request, exclude_not_for_ui=request.exclude_not_for_ui,
                           deadline=Deadline(settings.request_time_limit, settings.max_regex_length),
                           versions_match=request.versions_match)


def _is_paged(request: ExpandRequest) -> bool:
    return request.count is not None or bool(request.offset)


# -- text filter ------------------------------------------------------------------------------


# Runs of letters and digits (str.isalnum: \w without the underscore).
_WORD = re.compile(r"[^\W_]+")


@functools.lru_cache(maxsize=65_536)
def _words(text: str) -> tuple[str, ...]:
    # Cached: the same displays are split on every filtered expansion (a hot path; content is
    # fixed while the process runs, so the cache holds at most every display once).
    return tuple(_WORD.findall(text.lower()))


@functools.lru_cache(maxsize=65_536)
def _word_starts(text: str) -> str:
    """The words of `text`, each after a space: ' w' is in it iff w prefixes one of them."""
    return "".join(" " + w for w in _words(text))


def text_matcher(text: str) -> Any:
    """A predicate: every word of `text` prefixes some word of the display or a designation."""
    wanted = [" " + w for w in _words(text)]

    def matches(entry: ExpansionEntry) -> bool:
        texts = [entry.display or "", entry.code]
        if entry.concept is not None:
            texts.append(entry.concept.display or "")
            texts.extend(d.value for d in entry.concept.designations)
        have = "".join(_word_starts(t) for t in texts)
        return all(w in have for w in wanted)

    return matches


# -- rendering one entry ----------------------------------------------------------------------


def _designation_wanted(d: Designation, filters: list[tuple[str | None, str]]) -> bool:
    if not filters:
        return True
    for system, code in filters:
        if system == BCP47 or (system is None and d.language):
            # a designation filter names a language exactly: 'de' does not select 'de-CH'
            if d.language and d.language.lower() == code.lower():
                return True
        elif d.use and d.use.get("code") == code and (system is None or d.use.get("system") == system):
            return True
    return False


def _pick_display(entry: ExpansionEntry, languages: list[str],
                  fallback: bool = True) -> tuple[str | None, Designation | None]:
    """The display for the asked languages, and the designation it came from (if any)."""
    concept, provider = entry.concept, entry.provider
    if not languages or concept is None or provider is None:
        return entry.display, None
    for lang in languages:
        if lang == "*":
            return entry.display, None
        if provider.language and language_matches(lang, provider.language) and entry.display:
            return entry.display, None
        for d in [*entry.designations, *concept.designations]:
            if d.language and language_matches(lang, d.language) and _display_use(d):
                return d.value, d
    return (entry.display if fallback else None), None


def _display_use(d: Designation) -> bool:
    return d.use is None or d.use.get("code") in ("display", "preferredForLanguage")


def _designations(entry: ExpansionEntry, shown: str | None, used: Designation | None,
                  pres: Presentation) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    concept, provider = entry.concept, entry.provider
    candidates: list[Designation] = []
    if (concept is not None and provider is not None and provider.language and concept.display
            and shown != concept.display):
        candidates.append(Designation(provider.language, PREFERRED_FOR_LANGUAGE, concept.display))
    # the code system's designations first, then those the value set adds (tx.fhir.org's order)
    if concept is not None:
        candidates.extend(concept.designations)
    candidates.extend(entry.designations)
    for sup in pres.supplements.get((entry.system, entry.code), []):
        candidates.extend(Designation.from_fhir(d) for d in sup.get("designation", []))
    seen: set[tuple[str | None, str]] = set()
    for d in candidates:
        if d is used or (d.language, d.value) in seen or not _designation_wanted(d, pres.designation_filters):
            continue
        seen.add((d.language, d.value))
        item: dict[str, Any] = {}
        exts = [e for e in d.extensions if e.get("url") in DESIGNATION_EXTENSIONS]
        if exts:
            item["extension"] = exts
        if d.language:
            item["language"] = d.language
        if d.use:
            item["use"] = d.use
        item["value"] = d.value
        out.append(item)
    return out


def _property_values(concept: Concept, code: str) -> list[tuple[str, Any]]:
    if code == "definition":
        return [("valueString", concept.definition)] if concept.definition else []
    if code == "parent":
        return [("valueCode", p) for p in concept.parents]
    if code == "child":
        return [("valueCode", c) for c in concept.children]
    return [p.to_part_value() for p in concept.properties if p.code == code]


SD = "http://hl7.org/fhir/StructureDefinition/"
# Concept extensions tx.fhir.org reports as properties: url -> (property code, value key, uri)
EXTENSION_PROPERTIES = {
    SD + "codesystem-conceptOrder": ("order", "valueDecimal", CONCEPT_PROPERTIES + "order"),
    SD + "valueset-conceptOrder": ("order", "valueDecimal", CONCEPT_PROPERTIES + "order"),
    SD + "codesystem-label": ("label", "valueString", CONCEPT_PROPERTIES + "label"),
    SD + "valueset-label": ("label", "valueString", CONCEPT_PROPERTIES + "label"),
    SD + "itemWeight": ("weight", "valueDecimal", CONCEPT_PROPERTIES + "itemWeight"),
}
# Concept extensions copied onto `contains` (from the code system / from the value set).
CS_CONCEPT_EXTENSIONS = frozenset({SD + "rendering-style", SD + "rendering-xhtml",
                                   SD + "coding-sctdescid", SD + "codesystem-alternate"})
# Designation extensions echoed in an expansion (others, e.g. unknown ones, are dropped).
DESIGNATION_EXTENSIONS = frozenset({SD + "coding-sctdescid", SD + "rendering-style",
                                    SD + "rendering-xhtml", SD + "structuredefinition-standards-status",
                                    SD + "codesystem-alternate"})
VS_CONCEPT_EXTENSIONS = frozenset({SD + "valueset-supplement", SD + "valueset-deprecated",
                                   SD + "structuredefinition-standards-status",
                                   SD + "valueset-concept-definition", SD + "coding-sctdescid",
                                   SD + "rendering-style", SD + "rendering-xhtml"})


def _extension_properties(extensions: list[dict[str, Any]]) -> dict[str, tuple[str, Any]]:
    out: dict[str, tuple[str, Any]] = {}
    for ext in extensions:
        known = EXTENSION_PROPERTIES.get(ext.get("url", ""))
        value = next((v for k, v in ext.items() if k.startswith("value")), None)
        if known is not None and value is not None:
            out[known[0]] = (known[1], value)
    return out


def _entry_extensions(entry: ExpansionEntry, pres: Presentation) -> list[dict[str, Any]]:
    """The code system's (and supplements') concept extensions, then the value set's."""
    out = [e for e in _cs_extensions(entry, pres) if e.get("url") in CS_CONCEPT_EXTENSIONS]
    out.extend(e for e in entry.extensions if e.get("url") in VS_CONCEPT_EXTENSIONS)
    return out


def _cs_extensions(entry: ExpansionEntry, pres: Presentation) -> list[dict[str, Any]]:
    exts = list(entry.concept.extensions) if entry.concept is not None else []
    for sup in pres.supplements.get((entry.system, entry.code), []):
        exts.extend(sup.get("extension", []))
    return exts


def _concept_status(entry: ExpansionEntry) -> str | None:
    concept = entry.concept
    if concept is None:
        return None
    if concept.status not in (None, "active"):
        return concept.status
    for ext in concept.extensions:
        if ext.get("url") == STANDARDS_STATUS_EXT and ext.get("valueCode") == "deprecated":
            return "deprecated"
    return None


def _supplement_values(entry: ExpansionEntry, pres: Presentation, code: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for sup in pres.supplements.get((entry.system, entry.code), []):
        for prop in sup.get("property", []):
            if prop.get("code") == code:
                out.extend((k, v) for k, v in prop.items() if k.startswith("value"))
    return out


def _properties(entry: ExpansionEntry, pres: Presentation) -> list[dict[str, Any]]:
    if entry.concept is None:
        return []
    values: dict[str, list[tuple[str, Any]]] = {}
    derived = _extension_properties(_cs_extensions(entry, pres))
    derived.update(_extension_properties(entry.extensions))  # the value set's own wins
    for code, kv in derived.items():
        values[code] = [kv]
    for code in pres.properties:
        found = _property_values(entry.concept, code) + _supplement_values(entry, pres, code)
        if found:
            values[code] = found
    # tx.fhir.org reports a status other than active (retired, deprecated...) unasked.
    status = _concept_status(entry)
    if status is not None:
        values["status"] = [("valueCode", status)]
    out = []
    for code, found in values.items():
        if code not in pres.used_properties:
            pres.used_properties.append(code)
        for key, value in found:
            out.append({"url": CONTAINS_PROPERTY_EXT, "extension": [
                {"url": "code", "valueCode": code}, {"url": "value", key: value}]})
    return out


def _plain(entry: ExpansionEntry, pres: Presentation) -> bool:
    """An entry without extensions or properties to show (most of a big expansion): no
    concept or value set extensions, no status, no properties or supplements asked for."""
    concept = entry.concept
    return (concept is not None and not concept.extensions and not entry.extensions
            and concept.status in (None, "active") and not pres.properties
            and not pres.supplements)


def render_entry(entry: ExpansionEntry, pres: Presentation, versioned: set[str]) -> dict[str, Any]:
    """One `contains` item (with its nested children)."""
    item: dict[str, Any] = {"system": entry.system}
    if entry.version and entry.system in versioned:
        item["version"] = entry.version
    if entry.abstract:
        item["abstract"] = True
    if entry.inactive:
        item["inactive"] = True
    item["code"] = entry.code
    display, used = _pick_display(entry, pres.languages, pres.fallback)
    if display:
        item["display"] = display
    if pres.include_designations:
        designations = _designations(entry, display, used, pres)
        if designations:
            item["designation"] = designations
    exts = [] if _plain(entry, pres) else [*_entry_extensions(entry, pres), *_properties(entry, pres)]
    if exts:
        item["extension"] = exts
    if entry.children:
        item["contains"] = [render_entry(c, pres, versioned) for c in entry.children]
    return item


# -- the expansion element --------------------------------------------------------------------


def _declared_properties(expansion: Expansion, pres: Presentation) -> list[dict[str, Any]]:
    """expansion.property (R5, sent as an R4 extension) for the properties asked for or given."""
    uris: dict[str, str] = {code: uri for code, _, uri in EXTENSION_PROPERTIES.values()}
    uris.update({c: CONCEPT_PROPERTIES + c for c in ("definition", "parent", "child", "status", "inactive")})
    for sup in pres.supplement_resources:
        uris.update({pd["code"]: pd["uri"] for pd in sup.get("property", []) if pd.get("uri")})
    for provider in expansion.providers:
        uris.update({pd["code"]: pd["uri"] for pd in provider.property_definitions() if pd.get("uri")})
    out = []
    for code in [*pres.properties, *(c for c in pres.used_properties if c not in pres.properties)]:
        parts: list[dict[str, Any]] = [{"url": "code", "valueCode": code}]
        if code in uris:
            parts.append({"url": "uri", "valueUri": uris[code]})
        out.append({"url": EXP_PROPERTY_EXT, "extension": parts})
    return out


def _used_parameters(expansion: Expansion) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"name": "used-codesystem", "valueUri": s} for s in expansion.used_systems]
    out.extend({"name": "used-valueset", "valueUri": v} for v in expansion.used_valuesets)
    out.extend({"name": "used-fragment", "valueUri": f} for f in expansion.fragments)
    out.extend({"name": f"warning-{kind}", "valueUri": c} for kind, c in expansion.warnings)
    return out


def _versioned_systems(expansion: Expansion, value_set: dict[str, Any]) -> set[str]:
    """Systems whose contains items carry the version: expanded in more than one version, or
    named with different versions by the compose (as tx.fhir.org does)."""
    seen = expansion.members.system_versions()
    compose = value_set.get("compose") or {}
    named: dict[str, set[str | None]] = {}
    for part in (*compose.get("include", []), *compose.get("exclude", [])):
        if part.get("system"):
            named.setdefault(part["system"], set()).add(part.get("version"))
    return {s for s, v in seen.items() if len(v) > 1} | {s for s, v in named.items() if len(v) > 1}


def _presentation(request: ExpandRequest, value_set: dict[str, Any],
                  accept_language: str | None) -> Presentation:
    asked = request.display_language or accept_language or value_set.get("language")
    languages = parse_languages(asked)
    filters: list[tuple[str | None, str]] = []
    for token in request.designations:
        system, sep, code = token.rpartition("|")
        filters.append((system if sep else None, code))
    return Presentation(languages, not _no_fallback(asked), request.include_designations or bool(filters), filters,
                        list(request.properties))


def _no_fallback(header: str | None) -> bool:
    """'de, *; q=0': any language but the listed ones is unacceptable."""
    for item in (header or "").split(","):
        tag, _, params = item.strip().partition(";")
        if tag.strip() == "*" and params.replace(" ", "") in ("q=0", "q=0.0"):
            return True
    return False


def _echo(request: ExpandRequest, accept_language: str | None) -> list[dict[str, Any]]:
    echo = list(request.echo)
    if request.display_language is None and accept_language:
        echo.append({"name": "displayLanguage", "valueCode": accept_language})
    return echo


def expand(registry: Registry, request: ExpandRequest, settings: Settings, *,
           instance: dict[str, Any] | None = None, accept_language: str | None = None,
           max_size: int | None = None) -> dict[str, Any]:
    """The ValueSet with its expansion for `request`."""
    value_set = target_value_set(registry, request, instance)
    request = apply_value_set_defaults(request, value_set)
    options = compose_options(request, settings)
    paged = _is_paged(request)
    limit = None if paged else (max_size or settings.max_expansion_size)
    expansion = expand_compose(registry, value_set, options, max_size=None if request.text_filter else limit)
    members = expansion.members
    if request.text_filter:
        # a word index answers where the code system has one; other members are tested
        members = members.text_filtered(request.text_filter, text_matcher(request.text_filter))
    total = len(members)
    offset = request.offset or 0
    if any(s.split("|")[0] == CPT_URL for s in expansion.used_systems):
        _check_cpt_cap(value_set, request, total, settings.max_cpt_expansion)
    if limit is not None and total > limit:
        raise too_costly(value_set, limit)
    if paged:
        # only the page's entries are built
        shown = members.slice(offset, None if request.count is None else offset + request.count)
    elif request.exclude_nested is True:
        shown = members.entries()
    else:
        # built afresh (not the members' shared entries), so nesting may fill them in place
        entries = members.slice(0, None)
        # A text search over a whole code system lists matches flat; hierarchy filters nest.
        shown = nest_entries(entries if not request.text_filter else
                             [replace(e, nestable=e.nestable and e.filtered) for e in entries],
                             copy=False)
    pres = _presentation(request, value_set, accept_language)
    pres.supplement_resources = resolve_supplements(registry, expansion, request, value_set)
    pres.supplements = supplement_concepts(pres.supplement_resources)
    versioned = _versioned_systems(expansion, value_set)
    body: dict[str, Any] = {"identifier": f"urn:uuid:{uuid.uuid4()}", "timestamp": _now(),
                            "total": total}
    if paged:  # R4 $expand: offset is reported for paged expansions
        body["offset"] = offset
    merged = [{"name": "versionsMatch", "valueBoolean": True}] if expansion.versions_match else []
    body["parameter"] = (_echo(request, accept_language) + merged
                         + [{"name": n, "valueUri": v} for n, v in expansion.version_parameters]
                         + _used_parameters(expansion)
                         + [{"name": "used-supplement", "valueUri": canonical(sup)}
                            for sup in pres.supplement_resources])
    contains = [render_entry(e, pres, versioned) for e in shown]
    exts = _declared_properties(expansion, pres)
    if expansion.unclosed:
        exts.append({"url": UNCLOSED_EXT, "valueBoolean": True})
        exts.extend({"url": UNCLOSED_REASON_EXT, "valueString": r} for r in expansion.unclosed_reasons)
    if exts:
        body["extension"] = exts
    if contains:
        body["contains"] = contains
    out = {k: v for k, v in value_set.items() if k not in DROPPED_ELEMENTS}
    # The value set's own extensions (valueset-supplement, ...) belong to its definition: like
    # tx.fhir.org, they are repeated only with includeDefinition.
    if not request.include_definition:
        out.pop("extension", None)
    if "extension" in out:  # its standards-status is reported as a warning-* parameter instead
        out["extension"] = [e for e in out["extension"] if e.get("url") != STANDARDS_STATUS_EXT]
        if not out["extension"]:
            del out["extension"]
    if request.include_definition and "compose" in value_set:
        out["compose"] = value_set["compose"]
    out["expansion"] = body
    return out


def _check_cpt_cap(value_set: dict[str, Any], request: ExpandRequest, total: int, cap: int) -> None:
    """CPT descriptors are licensed: no answer shows members past the cap (tx.fhir.org's 1000;
    the operator's max_cpt_expansion), so neither a big count nor paging copies the release.
    The window of a paged request ends at offset + count (at most the total)."""
    if _is_paged(request):
        end = (request.offset or 0) + (total if request.count is None else request.count)
        shown_until = min(end, total)
    else:
        shown_until = total
    if shown_until > cap:
        raise TooCostly(
            f"The value set '{vs_canonical(value_set)}' expansion includes CPT, whose licensed "
            f"content this server lists only up to member {cap} (setting max_cpt_expansion); this "
            f"request asks for members up to {shown_until}", message_id="VALUESET_TOO_COSTLY")


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


# A client may ask for a lower cost threshold than the server's (never a higher one).
THRESHOLD_HEADER = "X-TOO-COSTLY-THRESHOLD"


def _client_threshold(headers: Mapping[str, str]) -> int | None:
    for name, value in headers.items():
        if name.lower() == THRESHOLD_HEADER.lower() and value.strip().isdigit():
            return int(value.strip())
    return None


def handle_expand(ctx: OperationContext) -> dict[str, Any]:
    """The ("ValueSet", "expand") handler: type level (url/valueSet) or instance level."""
    request = expand_request(ctx.bag)
    limit = ctx.settings.max_expansion_size
    asked = _client_threshold(ctx.headers)
    if asked is not None:
        limit = min(limit, asked)
    return expand(ctx.registry, request, ctx.settings, instance=ctx.instance,
                  accept_language=ctx.accept_language, max_size=limit)
