"""The server's own endpoints (blueprint `admin`): liveness, readiness, Prometheus metrics and
the content reload; none of them is under the /fhir base."""

from __future__ import annotations

import hmac

import orjson
from flask import Blueprint, Response, current_app, g, request

from terminology.errors import FhirError
from terminology.http import metrics
from terminology.registry import Registry
from terminology.settings import Settings


def _current() -> Registry:
    found: Registry = g.get("registry") or current_app.extensions["tx_registry"]
    return found


def healthz() -> Response:
    """Liveness: the process answers."""
    return Response(b'{"status":"ok"}', content_type="application/json")


def readyz() -> Response:
    """Readiness: all content is loaded (the app exists only after loading completes)."""
    body = {"status": "ready", "codeSystems": len(_current().providers()),
            "valueSets": len(_current().resources("ValueSet")),
            "contentVersion": current_app.extensions.get("tx_content_version")}
    return Response(orjson.dumps(body), content_type="application/json")


def metrics_page() -> Response:
    """Prometheus metrics of every worker (metrics.py)."""
    body, ctype = metrics.exposition()
    return Response(body, content_type=ctype)


def admin_reload() -> Response:
    """Reload the content (server/reload.py); needs `Authorization: Bearer <admin_token>`."""
    check_admin(current_app.extensions["tx_settings"].admin_token)
    done = current_app.extensions["tx_reload"]()
    if done is False:
        raise FhirError("The reload failed; the previous content is still served "
                        "(the server log says why)", code="conflict", status=409)
    return Response(b'{"status":"reload requested"}', status=202, content_type="application/json")


def check_admin(token: str) -> None:
    """401 unless the request carries `Authorization: Bearer <token>` (constant-time check)."""
    sent = request.headers.get("Authorization", "")
    scheme, _, value = sent.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
        raise FhirError("This endpoint needs the admin token as `Authorization: Bearer ...`",
                        code="login", status=401)


def admin_blueprint(settings: Settings) -> Blueprint:
    """The blueprint with the endpoints `settings` turn on (/metrics on the API port unless it
    has its own; /admin/reload only with an admin token)."""
    admin = Blueprint("admin", __name__)
    admin.add_url_rule("/healthz", view_func=healthz, methods=["GET"])
    admin.add_url_rule("/readyz", view_func=readyz, methods=["GET"])
    if settings.metrics and not settings.metrics_port:
        admin.add_url_rule("/metrics", view_func=metrics_page, methods=["GET"])
    if settings.admin_token:
        admin.add_url_rule("/admin/reload", view_func=admin_reload, methods=["POST"])
    return admin
