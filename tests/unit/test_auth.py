"""Bearer tokens: static service tokens, JWT verification (public key and JWKS), SMART scopes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import jwt
import pytest

from terminology.errors import Forbidden, Unauthorized
from terminology.http.authoring.auth import Authorizer, parse_scopes
from terminology.settings import Settings

from ..e2e.authoring_support import AUDIENCE, ISSUER, make_jwt, public_pem, rsa_key

KEY = rsa_key()


def test_v2_scopes_grant_their_letters_and_v1_write_means_cud() -> None:
    grants = parse_scopes(["system/ValueSet.cu", "user/*.rs", "user/ConceptMap.write"])
    assert ("ValueSet", "c") in grants and ("ValueSet", "u") in grants
    assert ("ValueSet", "d") not in grants
    assert ("*", "r") in grants and ("*", "c") not in grants
    assert {("ConceptMap", p) for p in "cud"} <= grants


@pytest.mark.parametrize("scope", ["patient/ValueSet.cud", "system/ValueSet.dc", "system/ValueSet.cud?x=1",
                                   "ValueSet.cud", "openid", "system/ValueSet.cudx"])
def test_scopes_that_cannot_apply_grant_nothing(scope: str) -> None:
    assert parse_scopes([scope]) == frozenset()


def test_static_tokens_are_matched_exactly_and_may_do_everything() -> None:
    auth = Authorizer(Settings(write_tokens="alpha-token, beta-token"))
    who = auth.authenticate("Bearer beta-token")
    assert who.who == "static-token-2"
    auth.require(who, "CodeSystem", "delete")
    for header in ("Bearer beta-toke", "Bearer beta-tokenx", "Bearer ", "beta-token", "Basic beta-token"):
        with pytest.raises(Unauthorized) as e:
            auth.authenticate(header)
        assert e.value.headers["WWW-Authenticate"].startswith("Bearer")


def test_settings_never_show_secrets_in_their_repr() -> None:
    s = Settings(write_tokens="very-secret", jwt_public_key="-----BEGIN", store="postgresql://u:pw@h/db")
    assert "very-secret" not in repr(s) and "pw@" not in repr(s)


def test_jwt_verified_with_a_public_key_needs_the_scope() -> None:
    auth = Authorizer(Settings(jwt_public_key=public_pem(KEY), jwt_issuer=ISSUER, jwt_audience=AUDIENCE))
    reader = auth.authenticate("Bearer " + make_jwt(KEY, "system/ValueSet.rs"))
    auth.require(reader, "ValueSet", "read")
    with pytest.raises(Forbidden) as e:
        auth.require(reader, "ValueSet", "create")
    assert 'error="insufficient_scope"' in e.value.headers["WWW-Authenticate"]
    with pytest.raises(Unauthorized):
        auth.authenticate("Bearer " + hs256_with_public_key())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_with_public_key() -> str:
    """The algorithm-confusion attack: an HS256 token whose HMAC secret is the public key."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps({"iss": ISSUER, "aud": AUDIENCE, "exp": 2**40, "scope": "system/*.cud"}).encode())
    sig = hmac.new(public_pem(KEY).encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(sig)}"


@pytest.fixture()
def jwks_url() -> Iterator[str]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/jwks.json"
    finally:
        server.shutdown()


def test_jwt_verified_with_keys_from_a_jwks_url(jwks_url: str) -> None:
    auth = Authorizer(Settings(jwt_jwks_url=jwks_url, jwt_issuer=ISSUER, jwt_audience=AUDIENCE))
    token = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "exp": 2**40, "sub": "svc", "scope": "system/ValueSet.cud"},
                       KEY, algorithm="RS256", headers={"kid": "k1"})
    who = auth.authenticate("Bearer " + token)
    assert who.who == "svc"
    auth.require(who, "ValueSet", "update")
    other = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "exp": 2**40}, rsa_key(), algorithm="RS256",
                       headers={"kid": "k1"})
    with pytest.raises(Unauthorized):
        auth.authenticate("Bearer " + other)
