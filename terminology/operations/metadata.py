"""GET metadata: the CapabilityStatement and (mode=terminology) TerminologyCapabilities."""

from __future__ import annotations

from typing import Any

from terminology import __version__
from terminology.cpt import served_releases
from terminology.registry import Registry

SOFTWARE = "CPT imaging terminology server"
RELEASE_DATE = "2026-11-26"
OPERATION_BASE = "http://hl7.org/fhir/OperationDefinition/"
TOOLS_OPERATION_BASE = "http://hl7.org/fhir/tools/OperationDefinition/"
FEATURE_EXT = "http://hl7.org/fhir/uv/application-feature/StructureDefinition/feature"

# (resource type, operation name, definition) for every operation the server answers.
OPERATIONS: list[tuple[str, str, str]] = [
    ("CodeSystem", "lookup", OPERATION_BASE + "CodeSystem-lookup"),
    ("CodeSystem", "validate-code", OPERATION_BASE + "CodeSystem-validate-code"),
    ("CodeSystem", "subsumes", OPERATION_BASE + "CodeSystem-subsumes"),
    ("ValueSet", "expand", OPERATION_BASE + "ValueSet-expand"),
    ("ValueSet", "validate-code", OPERATION_BASE + "ValueSet-validate-code"),
    ("ValueSet", "batch-validate-code", OPERATION_BASE + "ValueSet-batch-validate-code"),
    ("ConceptMap", "translate", OPERATION_BASE + "ConceptMap-translate"),
    ("ValueSet", "compare", TOOLS_OPERATION_BASE + "ValueSet-compare"),  # HL7 FHIR Tooling IG
]
EXPANSION_PARAMETERS = [
    "activeOnly", "check-system-version", "count", "default-valueset-version", "designation",
    "displayLanguage", "excludeNested", "excludeNotForUI", "filter", "force-system-version",
    "includeDefinition", "includeDesignations", "offset", "property", "system-version",
    "tx-resource",
]


def _feature(definition: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"url": FEATURE_EXT, "extension": [
        {"url": "definition", "valueCanonical": definition}, {"url": "value", **value},
    ]}


WRITE_INTERACTIONS = ("create", "update", "delete", "vread", "history-instance")
SMART_SECURITY = {"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                  "code": "SMART-on-FHIR"}


def _security(writes: bool, jwt: bool) -> dict[str, Any]:
    """rest.security: how writes are authorized (bearer tokens; SMART scopes for JWTs)."""
    if not writes:
        return {"cors": True, "description": "Read-only: no interaction needs a token."}
    out: dict[str, Any] = {"cors": True}
    if jwt:
        out["service"] = [{"coding": [SMART_SECURITY], "text": "OAuth2 bearer JWT with SMART v2 scopes"}]
    out["description"] = (
        "Writes need Authorization: Bearer <token>: a service token, or a JWT access token "
        "with SMART v2 scopes such as system/ValueSet.cud or user/*.cu (create c, update u, "
        "delete d). 401 without a valid token, 403 without the scope.")
    return out


def capability_statement(registry: Registry, base_url: str, operations: set[str], *,
                         writes: bool = False, jwt: bool = False) -> dict[str, Any]:
    """The CapabilityStatement; `operations` names the operations routed, `writes` whether
    the write interactions are enabled (and `jwt` whether JWT access tokens are accepted)."""
    resources = []
    for rtype in ("CodeSystem", "ValueSet", "ConceptMap"):
        ops = [{"name": name, "definition": d} for t, name, d in OPERATIONS
               if t == rtype and f"{t}/{name}" in operations]
        entry: dict[str, Any] = {
            "type": rtype,
            "interaction": [{"code": "read"}, {"code": "search-type"},
                            *({"code": c} for c in (WRITE_INTERACTIONS if writes else ()))],
            "searchParam": [
                {"name": n, "type": t} for n, t in
                (("url", "uri"), ("version", "token"), ("name", "string"),
                 ("title", "string"), ("status", "token"))
            ],
        }
        if writes:
            entry.update(versioning="versioned-update", readHistory=True, updateCreate=True,
                         conditionalCreate=True, conditionalUpdate=True, conditionalDelete="not-supported")
        if ops:
            entry["operation"] = ops
        resources.append(entry)
    cpt = served_releases(registry)
    return {
        "resourceType": "CapabilityStatement",
        "extension": [
            _feature("http://hl7.org/fhir/uv/tx-tests/FeatureDefinition/test-version",
                     {"valueCode": "1.7.8"}),
            _feature("http://hl7.org/fhir/uv/tx-ecosystem/FeatureDefinition/CodeSystemAsParameter",
                     {"valueBoolean": True}),
        ],
        "url": f"{base_url}/metadata",
        "version": __version__,
        "name": "CptImagingTerminologyServer",
        "title": "CPT imaging terminology server",
        "status": "active",
        "date": RELEASE_DATE,
        "publisher": "CPT imaging terminology server project",
        "kind": "instance",
        "instantiates": ["http://hl7.org/fhir/CapabilityStatement/terminology-server"],
        "software": {"name": SOFTWARE, "version": __version__, "releaseDate": RELEASE_DATE},
        "implementation": {"description": SOFTWARE, "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/json", "application/fhir+xml", "application/xml"],
        "rest": [{
            "mode": "server",
            "documentation": f"CPT served: {cpt or 'none'}",
            "security": _security(writes, jwt),
            "resource": resources,
            "interaction": [{"code": "batch"}],
            "operation": [{"name": "versions", "definition": OPERATION_BASE + "versions"}],
        }],
    }


def terminology_capabilities(registry: Registry, base_url: str,
                             cache_ids: bool = False) -> dict[str, Any]:
    """TerminologyCapabilities: each code system and version, expansion parameters.

    `cache_ids`: list the `cache-id` parameter, which is what tells HL7's Java validator that
    it may name content it sent before (terminology/cache_ids.py), as tx.fhir.org does.
    """
    parameters = [{"name": n} for n in EXPANSION_PARAMETERS]
    if cache_ids:
        parameters.append({"name": "cache-id", "documentation": (
            "Resources sent as tx-resource with a cache-id stay in scope for later requests "
            "that send the same cache-id (per server process, bounded, expiring when idle)")})
    systems: dict[str, list[str | None]] = {}
    for provider in registry.providers():
        systems.setdefault(provider.url, []).append(provider.version)
    code_systems = []
    for url, versions in sorted(systems.items()):
        entry: dict[str, Any] = {"uri": url}
        known = [v for v in versions if v]
        if known:
            entry["version"] = [{"code": v, "isDefault": v == max(known)} for v in sorted(known)]
        code_systems.append(entry)
    return {
        "resourceType": "TerminologyCapabilities",
        # R4 TerminologyCapabilities has no element for other operations: each one beyond the
        # core set is named as a feature whose definition is its OperationDefinition.
        "extension": [_feature(d, {"valueBoolean": True}) for t, name, d in OPERATIONS
                      if d.startswith(TOOLS_OPERATION_BASE)],
        "url": f"{base_url}/metadata?mode=terminology",
        "version": __version__,
        "name": "CptImagingTerminologyCapabilities",
        "title": "CPT imaging terminology server capabilities",
        "status": "active",
        "date": RELEASE_DATE,
        "kind": "instance",
        "software": {"name": SOFTWARE, "version": __version__},
        "codeSystem": code_systems,
        "expansion": {
            "hierarchical": True,
            "paging": True,
            "parameter": parameters,
            "textFilter": "Word prefixes, case-insensitive, over displays and designations",
        },
        "codeSearch": "all",
        "validateCode": {"translations": False},
        "translation": {"needsMap": True},
    }


def versions() -> dict[str, Any]:
    """The $versions answer: the FHIR versions this server speaks."""
    return {"resourceType": "Parameters", "parameter": [
        {"name": "version", "valueString": "4.0"},
        {"name": "default", "valueString": "4.0"},
    ]}
