"""One error model: Issue and the FhirError family, rendered as OperationOutcome dicts.

Every error the server answers with goes through here, so the shape is the same whether it
comes from a bad parameter, an unknown code system or an unexpected exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TX_ISSUE_TYPE = "http://hl7.org/fhir/tools/CodeSystem/tx-issue-type"
MESSAGE_ID_EXT = "http://hl7.org/fhir/StructureDefinition/operationoutcome-message-id"


@dataclass(slots=True)
class Issue:
    """One OperationOutcome issue.

    `code` is the FHIR issue-type (invalid, not-found, too-costly, ...); `tx_code` the
    tx-issue-type code (not-in-vs, invalid-code, ...) placed in details.coding.
    """

    severity: str
    code: str
    text: str
    expression: list[str] = field(default_factory=list)
    tx_code: str | None = None
    message_id: str | None = None
    diagnostics: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The issue as an R4 OperationOutcome.issue dict."""
        out: dict[str, Any] = {}
        if self.message_id:
            out["extension"] = [{"url": MESSAGE_ID_EXT, "valueString": self.message_id}]
        out["severity"] = self.severity
        out["code"] = self.code
        details: dict[str, Any] = {}
        if self.tx_code:
            details["coding"] = [{"system": TX_ISSUE_TYPE, "code": self.tx_code}]
        if self.text:
            details["text"] = self.text
        if details:  # an issue told only in `diagnostics` has no details
            out["details"] = details
        if self.diagnostics:
            out["diagnostics"] = self.diagnostics
        # R4 deprecates `location` for simple FHIRPath; tx.fhir.org sends `expression` only
        if self.expression:
            out["expression"] = list(self.expression)
        return out


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    """An OperationOutcome resource dict holding `issues`."""
    return {"resourceType": "OperationOutcome", "issue": [i.to_dict() for i in issues]}


class FhirError(Exception):
    """An error answered as an OperationOutcome with an HTTP status."""

    status = 400

    def __init__(
        self,
        text: str,
        *,
        code: str = "invalid",
        expression: str | list[str] | None = None,
        message_id: str | None = None,
        tx_code: str | None = None,
        status: int | None = None,
        issues: list[Issue] | None = None,
    ) -> None:
        super().__init__(text)
        if status is not None:
            self.status = status
        exprs = [expression] if isinstance(expression, str) else list(expression or [])
        first = Issue("error", code, text, exprs, tx_code, message_id)
        self.issues: list[Issue] = [first] + list(issues or [])
        self.headers: dict[str, str] = {}  # extra response headers (WWW-Authenticate)

    @property
    def text(self) -> str:
        """The first issue's message."""
        return self.issues[0].text

    def outcome(self) -> dict[str, Any]:
        """This error as an OperationOutcome dict."""
        return operation_outcome(self.issues)


class BadRequest(FhirError):
    """400: the request is malformed (a parameter missing, repeated or of the wrong type)."""

    status = 400


class NotFound(FhirError):
    """404: the resource or code the request names does not exist."""

    status = 404

    def __init__(self, text: str, **kw: Any) -> None:
        kw.setdefault("code", "not-found")
        super().__init__(text, **kw)


class Unprocessable(FhirError):
    """422: the request is well formed but its content cannot be processed."""

    status = 422

    def __init__(self, text: str, **kw: Any) -> None:
        kw.setdefault("code", "processing")
        super().__init__(text, **kw)


class TooCostly(FhirError):
    """422: the operation would exceed a configured limit."""

    status = 422

    def __init__(self, text: str, **kw: Any) -> None:
        kw.setdefault("code", "too-costly")
        kw.setdefault("message_id", "VALUESET_TOO_COSTLY")
        super().__init__(text, **kw)


class MethodNotAllowed(FhirError):
    """405: the interaction is not supported (the server is read-only); `allow` lists the
    methods the URL does take (the Allow header RFC 9110 requires on a 405)."""

    status = 405

    def __init__(self, text: str, *, allow: str = "GET, HEAD, OPTIONS", **kw: Any) -> None:
        kw.setdefault("code", "not-supported")
        super().__init__(text, **kw)
        self.headers = {"Allow": allow}


class UnsupportedMediaType(FhirError):
    """415: the request body is in a format the server does not read."""

    status = 415

    def __init__(self, text: str, **kw: Any) -> None:
        kw.setdefault("code", "not-supported")
        super().__init__(text, **kw)


class NotAcceptable(FhirError):
    """406: the client accepts no format the server writes."""

    status = 406

    def __init__(self, text: str, **kw: Any) -> None:
        kw.setdefault("code", "not-supported")
        super().__init__(text, **kw)


class PayloadTooLarge(FhirError):
    """413: the request body exceeds the configured maximum."""

    status = 413

    def __init__(self, text: str, **kw: Any) -> None:
        kw.setdefault("code", "too-costly")
        super().__init__(text, **kw)


class UriTooLong(FhirError):
    """414: the request line's URL is longer than the server accepts."""

    status = 414

    def __init__(self, text: str, **kw: Any) -> None:
        kw.setdefault("code", "too-long")
        super().__init__(text, **kw)


class HeadersTooLarge(FhirError):
    """431: the request's header fields are larger than the server accepts."""

    status = 431

    def __init__(self, text: str, **kw: Any) -> None:
        kw.setdefault("code", "too-long")
        super().__init__(text, **kw)


class Unauthorized(FhirError):
    """401: no token, or a token that is not valid; answered with WWW-Authenticate: Bearer."""

    status = 401

    def __init__(self, text: str, *, bearer_error: str | None = None, **kw: Any) -> None:
        kw.setdefault("code", "login")
        super().__init__(text, **kw)
        # RFC 6750 section 3: error="invalid_token" only when a token was sent
        challenge = 'Bearer realm="terminology"'
        if bearer_error:
            challenge += f', error="{bearer_error}"'
        self.headers = {"WWW-Authenticate": challenge}


class Forbidden(FhirError):
    """403: a valid token without the scope the interaction needs."""

    status = 403

    def __init__(self, text: str, *, scope: str = "", **kw: Any) -> None:
        kw.setdefault("code", "forbidden")
        super().__init__(text, **kw)
        self.headers = {"WWW-Authenticate":
                        f'Bearer realm="terminology", error="insufficient_scope", scope="{scope}"'}


class Gone(FhirError):
    """410: the resource existed and was deleted."""

    status = 410

    def __init__(self, text: str, **kw: Any) -> None:
        kw.setdefault("code", "deleted")
        super().__init__(text, **kw)


class Conflict(FhirError):
    """409: the write conflicts with the current state of the server."""

    status = 409

    def __init__(self, text: str, **kw: Any) -> None:
        kw.setdefault("code", "conflict")
        super().__init__(text, **kw)


class PreconditionFailed(FhirError):
    """412: If-Match names a version that is not current, or a conditional matched several."""

    status = 412

    def __init__(self, text: str, **kw: Any) -> None:
        kw.setdefault("code", "conflict")
        super().__init__(text, **kw)
