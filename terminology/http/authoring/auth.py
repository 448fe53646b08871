"""Who may write (and, when configured, read): decided once, at the HTTP edge.

Two standard ways, both as `Authorization: Bearer <token>`:
- static tokens for service accounts (settings.write_tokens / write_tokens_file), compared
  in constant time; a static token may do everything;
- JWT access tokens verified with PyJWT against a JWKS URL or a PEM public key, with the
  configured issuer and audience, carrying SMART v2 scopes: `system/ValueSet.cud`,
  `user/*.cu`, `user/CodeSystem.rs`... (v1 `.write`/`.read`/`.*` are understood too).
  A create needs `c`, an update `u`, a delete `d`, a read `r` or `s`. `patient/` scopes and
  scopes restricted by a query (`?...`) grant nothing here.
Tokens never reach a log line or an operation: the audit line names the token's subject
(or `static-token-N`).
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from terminology.errors import Forbidden, Unauthorized
from terminology.http.exchange import Early, Exchange
from terminology.settings import Settings

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
_SCOPE = re.compile(r"^(system|user)/(\*|[A-Za-z]+)\.([a-z*]+)$")
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
INTERACTION_PERMISSION = {"create": "c", "update": "u", "delete": "d", "read": "r"}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid token speaks for, and what it may do (None: everything)."""

    who: str
    grants: frozenset[tuple[str, str]] | None  # (resource type or '*', permission letter)

    def may(self, resource_type: str, permission: str) -> bool:
        """Whether the token allows `permission` (c, r, u, d, s) on `resource_type`."""
        if self.grants is None:
            return True
        return (resource_type, permission) in self.grants or ("*", permission) in self.grants


def parse_scopes(scopes: list[str]) -> frozenset[tuple[str, str]]:
    """SMART scopes -> (resource type, permission) grants."""
    grants: set[tuple[str, str]] = set()
    for scope in scopes:
        m = _SCOPE.match(scope)
        if m is None:
            continue  # openid, patient/..., launch, restricted scopes: nothing to write with
        _, rtype, perms = m.groups()
        perms = _V1.get(perms, perms)
        if not re.fullmatch(r"c?r?u?d?s?", perms):
            continue  # v2 permissions are in the order c r u d s, each at most once
        grants.update((rtype, p) for p in perms)
    return frozenset(grants)


def _load_jwt() -> ModuleType:
    """PyJWT, loaded only by a server that accepts JWT access tokens."""
    import jwt

    return jwt


def _public_key(value: str) -> str:
    if value.lstrip().startswith("-----BEGIN"):
        return value
    return Path(value).read_text()


class Authorizer:
    """Checks bearer tokens against the configured static tokens and JWT issuer."""

    def __init__(self, settings: Settings) -> None:
        self._tokens = [t.encode() for t in settings.static_tokens()]
        self.jwt_enabled = settings.jwt_enabled
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self._key = _public_key(settings.jwt_public_key) if settings.jwt_public_key else None
        self._jwt = _load_jwt() if settings.jwt_enabled or settings.jwt_jwks_url else None
        self._jwks = (self._jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True, lifespan=300)
                      if self._jwt is not None and settings.jwt_jwks_url and not self._key else None)
        self.writes_enabled = bool(self._tokens) or self.jwt_enabled

    def authenticate(self, header: str | None) -> Principal:
        """The principal of an `Authorization: Bearer` header; Unauthorized otherwise."""
        if not header:
            raise Unauthorized("This interaction needs an access token (Authorization: Bearer)")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("The Authorization header must be 'Bearer <token>'",
                               bearer_error="invalid_request")
        static = self._static(token.encode())
        if static is not None:
            return static
        if self.jwt_enabled and token.count(".") == 2:
            return self._verify_jwt(token)
        raise Unauthorized("The access token is not valid", bearer_error="invalid_token")

    def _static(self, token: bytes) -> Principal | None:
        found = None
        for i, known in enumerate(self._tokens, start=1):
            # every token compared, each in constant time: timing says nothing about which
            if hmac.compare_digest(token, known) and found is None:
                found = Principal(f"static-token-{i}", None)
        return found

    def _verify_jwt(self, token: str) -> Principal:
        jwt = self._jwt
        assert jwt is not None  # only called when JWTs are configured (jwt_enabled)
        try:
            key: Any = self._key
            if key is None and self._jwks is not None:
                key = self._jwks.get_signing_key_from_jwt(token).key
            claims = jwt.decode(token, key, algorithms=ALGORITHMS, audience=self.audience,
                                issuer=self.issuer, leeway=30,
                                options={"require": ["exp", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The access token has expired", bearer_error="invalid_token") from None
        except (jwt.PyJWTError, ValueError) as e:
            raise Unauthorized(f"The access token is not valid: {type(e).__name__}",
                               bearer_error="invalid_token") from None
        raw = claims.get("scope", claims.get("scp", ""))
        scopes = raw.split() if isinstance(raw, str) else [str(s) for s in raw or []]
        who = str(claims.get("sub") or claims.get("client_id") or "unknown")
        return Principal(who, parse_scopes(scopes))

    def require(self, principal: Principal, resource_type: str, interaction: str) -> None:
        """Forbidden unless the principal's scopes allow `interaction` on `resource_type`."""
        permission = INTERACTION_PERMISSION[interaction]
        if principal.may(resource_type, permission) or (
                permission == "r" and principal.may(resource_type, "s")):
            return
        needed = f"system/{resource_type}.{permission}"
        raise Forbidden(f"The access token does not allow {interaction} of {resource_type} "
                        f"(it needs a scope such as {needed} or user/{resource_type}.{permission})",
                        scope=needed)


# Paths anyone may read while reads need a token: the capability statement, the health
# probes, the metrics (they show no content; /metrics has its own settings) and the
# browser's static assets (stylesheets and scripts, no content).
OPEN_PATHS = frozenset({"/fhir/metadata", "/healthz", "/readyz", "/metrics"})
OPEN_PREFIXES = ("/assets/",)
# Writes check their own token, for writing (a create is a POST to the type).
SELF_GUARDED = frozenset({"writes.create"})


def guarded(path: str, method: str, endpoint: str | None) -> bool:
    """Whether a request needs a read token while reads need one (every route that shows
    content: /fhir, the browser, the editor, the search pages and their JSON helpers)."""
    if method not in ("GET", "HEAD", "POST") or endpoint in SELF_GUARDED:
        return False
    return path not in OPEN_PATHS and not path.startswith(OPEN_PREFIXES)


def read_guard(x: Exchange) -> Early | None:
    """Stage (setting read_requires_token): every request but those of the open list needs a
    token with a read scope, on every path (the dispatch and a cache hit run it too)."""
    if guarded(x.path, x.method, x.endpoint):
        authorizer: Authorizer = x.site.authorizer
        who = authorizer.authenticate(x.environ.get("HTTP_AUTHORIZATION"))
        x.who = who.who
        rtype = x.view_args.get("rtype")
        if rtype is not None or x.path.startswith("/fhir"):
            authorizer.require(who, rtype or "*", "read")
        elif not reads_something(who):  # a page shows several types: any read scope will do
            authorizer.require(who, "*", "read")
    return None


def reads_something(who: Principal) -> bool:
    """Whether the token may read (or search) some resource type."""
    return who.grants is None or any(p in ("r", "s") for _, p in who.grants)
