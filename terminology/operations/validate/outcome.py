"""The OperationOutcome a $validate-code answer carries in `issues`, built issue by issue.

tx.fhir.org reports each finding once: the same text at the same place is not repeated even
when two routes through a value set reach it. `Outcome.add` keeps that rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from terminology.errors import Issue, operation_outcome


def add_to_path(path: str, name: str) -> str:
    """'Coding' + 'code' -> 'Coding.code'; '' + 'code' -> 'code'."""
    return f"{path}.{name}" if path else name


@dataclass
class Outcome:
    """Issues found while validating one request."""

    issues: list[Issue] = field(default_factory=list)
    # (text, expression, severity) of the issues, so that adding one is not a scan of all
    # (30,000 codings in one CodeableConcept); rebuilt if `issues` was changed directly
    _seen: set[tuple[str, tuple[str, ...], str]] = field(default_factory=set, repr=False, compare=False)
    _synced: int = field(default=0, repr=False, compare=False)

    def add(self, severity: str, code: str, path: str | None, message_id: str | None,
            text: str, tx_code: str) -> bool:
        """Record an issue unless the same one is already there; True when added."""
        expression = [path] if path else []
        if self._synced != len(self.issues):
            self._seen = {(i.text, tuple(i.expression), i.severity) for i in self.issues}
        key = (text, tuple(expression), severity)
        if key in self._seen:
            return False
        self.issues.append(Issue(severity, code, text, expression, tx_code, message_id))
        self._seen.add(key)
        self._synced = len(self.issues)
        return True

    def add_issue(self, issue: Issue) -> None:
        """Record an already built issue."""
        self.add(issue.severity, issue.code, issue.expression[0] if issue.expression else None,
                 issue.message_id, issue.text, issue.tx_code or "")

    @property
    def has_errors(self) -> bool:
        """Whether any issue is an error."""
        return any(i.severity in ("error", "fatal") for i in self.issues)

    def error_texts(self) -> list[str]:
        """Texts of the error issues, in order."""
        return [i.text for i in self.issues if i.severity in ("error", "fatal")]

    def resource(self) -> dict[str, Any]:
        """The OperationOutcome dict."""
        return operation_outcome(self.issues)


class PrepareError(Exception):
    """A problem found before validation could start (an import that cannot be resolved, an
    unknown code system for CodeSystem/$validate-code). It is answered as result=false with
    the issue, not as an HTTP error."""

    def __init__(self, issue: Issue, unknown_system: str | None = None) -> None:
        super().__init__(issue.text)
        self.issue = issue
        self.unknown_system = unknown_system
