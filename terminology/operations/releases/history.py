"""Code history across the loaded releases of a code system (CPT's yearly releases).

When the release a request resolves to lacks a code that another loaded release has (a code
the AMA deleted this year, or one a newer release adds), the "unknown code" answers of
$lookup and $validate-code say so: the last release that has the code and its display
there, the first release that has it, and every release that has it. An EHR validating an
order written under last year's release learns that the code was valid then and what it
meant, instead of a bare "unknown".

Only code systems whose provider says `release_history = True` (CPT) and whose releases are
complete take part: for other code systems a version without a code is an ordinary unknown
code, as the FHIR test suite expects, and a fragment lacks codes it does not describe.
"""

from __future__ import annotations

from dataclasses import dataclass

from terminology.errors import Issue
from terminology.providers.base import CodeSystemProvider
from terminology.registry import Registry, version_key

HISTORY_MESSAGE_ID = "CODE_HISTORY"


@dataclass(frozen=True, slots=True)
class CodeHistory:
    """The loaded releases that have one code, oldest first."""

    system: str
    code: str
    asked: str | None  # the release that lacks the code
    versions: tuple[str, ...]
    last_display: str | None  # the display in the newest release that has it

    @property
    def first(self) -> str:
        """The oldest loaded release that has the code."""
        return self.versions[0]

    @property
    def last(self) -> str:
        """The newest loaded release that has the code."""
        return self.versions[-1]

    @property
    def deleted(self) -> bool:
        """Whether the code was in an older release than the one asked (not only newer)."""
        return version_key(self.last) < version_key(self.asked)

    def note(self) -> str:
        """The sentence added to the unknown-code message."""
        shown = f" (display '{self.last_display}')" if self.last_display else ""
        if self.deleted:
            return (f"; the code was deleted: the last version that has it is '{self.last}'"
                    f"{shown}, and the first is '{self.first}'")
        return f"; the code is in version '{self.first}' and later{shown}"

    def detail(self) -> str:
        """The information issue's text: every release that has the code."""
        return (f"Code '{self.code}' of the CodeSystem '{self.system}' is in version(s) "
                f"{', '.join(self.versions)}; first version '{self.first}', last version "
                f"'{self.last}'" + (f", where its display is '{self.last_display}'"
                                    if self.last_display else ""))

    def issue(self, path: str | None) -> Issue:
        """The information issue listing the releases that have the code."""
        return Issue("information", "informational", self.detail(), [path] if path else [],
                     "code-comment", HISTORY_MESSAGE_ID)


def code_history(registry: Registry, provider: CodeSystemProvider, code: str) -> CodeHistory | None:
    """The history of a code `provider` lacks across the other loaded releases of its code
    system, or None (no other release has it, or the code system keeps no history)."""
    if not getattr(provider, "release_history", False) or provider.content != "complete":
        return None
    found: list[tuple[str, str | None]] = []
    for version in registry.code_system_versions(provider.url):
        if version is None or version == provider.version:
            continue
        other = registry.code_system(provider.url, version)
        if other is None or other.version != version or other.content != "complete":
            continue
        concept = other.locate(code)
        if concept is not None and concept.code == code:
            found.append((version, concept.display))
    if not found:
        return None
    return CodeHistory(provider.url, code, provider.version, tuple(v for v, _ in found),
                       found[-1][1])
