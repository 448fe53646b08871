"""What every answer of the HTTP face shares: the FHIR JSON content type, the CORS headers,
and the one content-negotiation rule (Flask's routes and the operation dispatch apply it)."""

from __future__ import annotations

from terminology.errors import NotAcceptable

FHIR_JSON = "application/fhir+json; charset=utf-8"
JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir", "text/json")
# CORS for browser-based FHIR apps (SMART apps, form builders): any origin, no credentials.
CORS_HEADERS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "X-Request-Id"}
# On every answer, whoever writes it (Flask's routes, the operation dispatch): CORS, and
# browsers never guess a content type.
EVERY_ANSWER_HEADERS = {**CORS_HEADERS, "X-Content-Type-Options": "nosniff"}


def not_acceptable(fmt: str | None, accept: str | None) -> NotAcceptable | None:
    """The 406 for a request that accepts only formats we do not write (XML, HTML...), from
    its `_format` parameter (which wins) and Accept header; None when JSON will do."""
    if fmt is not None:
        if fmt in ("json", "fhir+json") or fmt in JSON_TYPES:
            return None
        return NotAcceptable(f"_format '{fmt}' is not supported; this server writes JSON",
                             expression="_format")
    if not accept:
        return None
    types = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if any(t in JSON_TYPES or t in ("*/*", "application/*", "") for t in types):
        return None
    return NotAcceptable(
        f"This server writes application/fhir+json; the request accepts only '{accept}'"
    )
