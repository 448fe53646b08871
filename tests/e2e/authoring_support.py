"""Support for the authoring tests: a real server with writes on, JWTs made in the test, a
real PostgreSQL server started for the test in a temporary directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ..conftest import BODY_SITE, free_port
from ..conftest import running_server as serve

TOKEN = "service-token-5f1c0d9e2b7a4c68"  # a static write token (TX_WRITE_TOKENS)
ISSUER = "https://auth.example.test"
AUDIENCE = "https://tx.example.test/fhir"
# Debian's postgresql package: /usr/lib/postgresql/<major>/bin (the newest installed)
PG_BIN = max(Path("/usr/lib/postgresql").glob("*/bin/initdb"), default=Path("/usr/lib/postgresql/15/bin/initdb"),
             key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0).parent
FHIR = "application/fhir+json"


def rsa_key() -> rsa.RSAPrivateKey:
    """A fresh RSA key (the issuer's signing key, made in the test)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> str:
    """The PEM of a key's public half."""
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def make_jwt(key: rsa.RSAPrivateKey, scope: str, **claims: Any) -> str:
    """An RS256 access token from ISSUER for AUDIENCE; claims override the defaults."""
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "author-1", "iat": now, "exp": now + 300,
            "scope": scope, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm="RS256")


def bearer(token: str) -> dict[str, str]:
    """Headers for a FHIR JSON write with `token`."""
    return {"Authorization": f"Bearer {token}", "Content-Type": FHIR, "Accept": FHIR}


def body_site_value_set(url: str, codes: list[str], version: str = "1") -> dict[str, Any]:
    """A ValueSet of body-site codes (the test code system, complete content)."""
    return {"resourceType": "ValueSet", "url": url, "version": version, "status": "draft",
            "name": "TestOrderSet",
            "compose": {"include": [{"system": BODY_SITE, "concept": [{"code": c} for c in codes]}]}}


@dataclass
class Server:
    """A running `terminology serve`: its FHIR base url, process and log."""

    base: str
    proc: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def running_server(workdir: Path, env: dict[str, str], workers: int = 2) -> Iterator[Server]:
    """`terminology serve` (granian, `workers` workers) with `env` added; stopped after."""
    with serve(workdir, env, ("--workers", str(workers)), timeout=60) as (base, proc):
        yield Server(base, proc, workdir / "server.log")


def writes_env(data_dir: Path, key: rsa.RSAPrivateKey, **extra: str) -> dict[str, str]:
    """Settings for a server with writes on: a static token and JWTs signed by `key`."""
    return {"TX_DATA_DIR": str(data_dir), "TX_WRITE_TOKENS": f"another-token,{TOKEN}",
            "TX_JWT_PUBLIC_KEY": public_pem(key), "TX_JWT_ISSUER": ISSUER,
            "TX_JWT_AUDIENCE": AUDIENCE, "TX_LOG_LEVEL": "info", **extra}


def json_of(resp: Any) -> dict[str, Any]:
    """A response body as a dict."""
    return dict(orjson.loads(resp.content))


# -- PostgreSQL ---------------------------------------------------------------------------------


def postgres_missing() -> str | None:
    """Why PostgreSQL cannot be started here, or None."""
    for name in ("initdb", "pg_ctl", "postgres"):
        if not (PG_BIN / name).exists() and shutil.which(name) is None:
            return f"PostgreSQL's {name} is not installed (apt-get install postgresql)"
    return None


def _pg(name: str) -> str:
    return str(PG_BIN / name) if (PG_BIN / name).exists() else str(shutil.which(name))


@contextmanager
def postgres_server() -> Iterator[str]:
    """A fresh PostgreSQL cluster on 127.0.0.1 and a free port; its URL (database 'tx').

    PostgreSQL refuses to run as root, so as root (CI) the cluster belongs to the
    `postgres` user (or `nobody`) and its commands run through runuser.
    """
    root = os.geteuid() == 0
    owner = "postgres" if root and _user_exists("postgres") else ("nobody" if root else None)
    home = Path(tempfile.mkdtemp(prefix="tx-pg-"))
    data, sock = home / "data", home / "sock"
    sock.mkdir()
    if owner:
        shutil.chown(home, owner)
        shutil.chown(sock, owner)

    def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        full = ["runuser", "-u", owner, "--", *cmd] if owner else list(cmd)
        return subprocess.run(full, check=check, capture_output=True, timeout=120)

    port = free_port()
    try:
        run(_pg("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        run(_pg("pg_ctl"), "-D", str(data), "-l", str(home / "pg.log"), "-w", "-t", "60", "start",
            "-o", f"-h 127.0.0.1 -p {port} -k {sock} -c fsync=off -c max_connections=100")
        run(_pg("createdb") if (PG_BIN / "createdb").exists() else "createdb",
            "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "tx")
        yield f"postgresql://postgres@127.0.0.1:{port}/tx"
    finally:
        run(_pg("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(home, ignore_errors=True)


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
