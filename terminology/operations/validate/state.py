"""What checking a code carries along: the request's settings, what one coding and the whole
request found out, and the version rules (system-version, force-, check-system-version)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from terminology.errors import FhirError
from terminology.operations.validate.displays import DisplayList
from terminology.operations.validate.messages import message
from terminology.operations.validate.outcome import Outcome
from terminology.providers.base import CodeSystemProvider, Concept
from terminology.registry import version_matches
from terminology.valuesets.compose import STANDARDS_STATUS_EXT, ComposeOptions, vs_canonical


@dataclass
class Settings:
    """The request options that change how a code is checked."""

    options: ComposeOptions
    languages: list[str]
    lang_summary: str
    abstract_ok: bool = True
    active_only: bool = False
    infer_system: bool = False
    display_warning: bool = False
    membership_only: bool = False
    supplements: list[dict[str, Any]] = field(default_factory=list)  # the ones in use


@dataclass
class CodingState:
    """What checking one coding found out (tx.fhir.org's var parameters)."""

    displays: DisplayList = field(default_factory=DisplayList)
    version: str | None = None
    inactive: bool = False
    inactive_path: str | None = None
    status: str = ""
    content_mode: str | None = None
    normal_form: str | None = None
    wanted_display: str | None = None  # the display the client sent
    version_given: bool = False  # the client's coding names a version


@dataclass
class RequestState:
    """Findings shared by every coding of one request."""

    op: Outcome = field(default_factory=Outcome)
    unknown_systems: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    implied_system: str | None = None
    normal_form: str | None = None

    def unknown(self, key: str) -> bool:
        """Note an unknown system(|version); True the first time it is seen."""
        if key in self.unknown_systems:
            return False
        self.unknown_systems.append(key)
        return True


def vurl(resource: dict[str, Any]) -> str:
    """'url|version' of a canonical resource ('(unidentified)' for one without a url)."""
    return vs_canonical(resource) if resource.get("url") else "(unidentified)"


def more_detailed(check: str | None, actual: str | None) -> bool:
    """Whether `actual` is a version the wildcard pattern `check` stands for ('1.0.x' -> '1.0.1').

    A plain '1' is not a pattern: it names a version of its own (which may not exist)."""
    return bool(check and actual and actual != check and version_matches(check, actual))


def concept_status(concept: Concept) -> str:
    """The concept's status as the messages quote it (status property, else the
    standards-status extension a CodeSystem concept may carry, e.g. deprecated)."""
    if concept.status:
        return concept.status
    for ext in concept.extensions:
        if ext.get("url") == STANDARDS_STATUS_EXT and ext.get("valueCode"):
            return str(ext["valueCode"])
    return "inactive" if concept.inactive else ""


def standards_status(resource: dict[str, Any]) -> str | None:
    for ext in resource.get("extension", []):
        if ext.get("url") == STANDARDS_STATUS_EXT:
            return ext.get("valueCode")
    return None


class VersionRules:
    """system-version (default), force-system-version (override), check-system-version."""

    def __init__(self, options: ComposeOptions) -> None:
        self.options = options

    def determine(self, url: str, version: str | None) -> str | None:
        """The version to use for `url`: forced > stated > default > the checked pattern."""
        if url in self.options.force_versions:
            return self.options.force_versions[url]
        if version:
            return version
        if url in self.options.system_versions:
            return self.options.system_versions[url]
        return self.options.check_versions.get(url)

    def check(self, provider: CodeSystemProvider, op: Outcome | None) -> None:
        """check-system-version: an issue (or an error) when the version used is not allowed."""
        wanted = self.options.check_versions.get(provider.url)
        if wanted is None or version_matches(wanted, provider.version):
            return
        text = message("VALUESET_VERSION_CHECK", provider.url, provider.version, wanted)
        if op is None:
            raise FhirError(text, code="exception", message_id="VALUESET_VERSION_CHECK",
                            tx_code="version-error")
        op.add("error", "exception", None, "VALUESET_VERSION_CHECK", text, "version-error")
