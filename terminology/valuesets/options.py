"""What changes a compose's evaluation (ComposeOptions from a request's version rules and
activeOnly), the parameters a value set states for itself, and the shared wording of
canonicals, status warnings and the too-costly error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from terminology.errors import TooCostly
from terminology.providers.filters import Deadline


@dataclass
class ComposeOptions:
    """What affects evaluation of a compose (request parameters that change membership)."""

    active_only: bool = False
    system_versions: dict[str, str] = field(default_factory=dict)  # system-version
    force_versions: dict[str, str] = field(default_factory=dict)  # force-system-version
    check_versions: dict[str, str] = field(default_factory=dict)  # check-system-version
    default_valueset_versions: dict[str, str] = field(default_factory=dict)
    exclude_not_for_ui: bool = False
    deadline: Deadline | None = None
    # versionsMatch: the versions of a code system mean the same codes, so a code is one member
    # whatever version it comes from (None: not said; see _versions_match for the default)
    versions_match: bool | None = None


class VersionedRequest(Protocol):
    """What $expand and $validate-code requests share that changes membership."""

    active_only: bool
    system_versions: dict[str, str]
    force_versions: dict[str, str]
    check_versions: dict[str, str]
    default_valueset_versions: dict[str, str]


def request_options(request: VersionedRequest, **extra: Any) -> ComposeOptions:
    """ComposeOptions from a request's activeOnly and version rules (+ operation-specific ones)."""
    return ComposeOptions(
        active_only=request.active_only,
        system_versions=dict(request.system_versions),
        force_versions=dict(request.force_versions),
        check_versions=dict(request.check_versions),
        default_valueset_versions=dict(request.default_valueset_versions),
        **extra,
    )


EXPANSION_PARAMETER_EXTS = (
    "http://hl7.org/fhir/StructureDefinition/valueset-expansion-parameter",
    "http://hl7.org/fhir/tools/StructureDefinition/valueset-expansion-parameter",
)


def value_set_parameters(value_set: dict[str, Any] | None) -> dict[str, Any]:
    """Parameters a value set states for its own use (compose valueset-expansion-parameter):
    name -> value (the last one given wins)."""
    out: dict[str, Any] = {}
    for ext in ((value_set or {}).get("compose") or {}).get("extension", []):
        if ext.get("url") not in EXPANSION_PARAMETER_EXTS:
            continue
        parts = {e.get("url"): e for e in ext.get("extension", [])}
        name, value = parts.get("name", {}), parts.get("value", {})
        key = next((k for k in value if k.startswith("value")), None)
        n = name.get("valueCode") or name.get("valueString")
        if n and key:
            out[n] = value[key]
    return out


def vs_canonical(value_set: dict[str, Any]) -> str:
    """'url|version' (or just url) of a value set or other canonical resource, as messages quote it."""
    url = value_set.get("url", "")
    version = value_set.get("version")
    return f"{url}|{version}" if version else url


STANDARDS_STATUS_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-standards-status"


def status_warnings(resource: dict[str, Any]) -> list[str]:
    """What about a code system or value set deserves a warning: draft, experimental,
    deprecated or withdrawn (standards-status extension)."""
    out = []
    if resource.get("status") == "draft":
        out.append("draft")
    if resource.get("experimental") is True:
        out.append("experimental")
    for ext in resource.get("extension", []):
        if ext.get("url") == STANDARDS_STATUS_EXT and ext.get("valueCode") in ("deprecated", "withdrawn"):
            out.append(ext["valueCode"])
    return out


def too_costly(value_set: dict[str, Any], limit: int) -> TooCostly:
    """The error for an expansion over `limit` members (tx.fhir.org's wording and id)."""
    return TooCostly(
        f"The value set '{vs_canonical(value_set)}' expansion has too many codes to produce (>{limit})",
        message_id="VALUESET_TOO_COSTLY",
    )
