"""One Settings object: content paths, limits and server options, from env vars and CLI flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

BUNDLED_CONTENT = Path(__file__).resolve().parent.parent / "codesystems"


def _env_list(name: str) -> list[Path]:
    raw = os.environ.get(name, "")
    return [Path(p) for p in raw.split(os.pathsep) if p]


@dataclass
class Settings:
    """Everything an operator can configure. Env vars are TX_<FIELD NAME IN UPPER CASE>."""

    host: str = "127.0.0.1"
    port: int = 8080
    content_dirs: list[Path] = field(default_factory=lambda: [BUNDLED_CONTENT])
    cpt_databases: list[Path] = field(default_factory=list)
    # Limits, enforced in one place each.
    max_expansion_size: int = 10_000  # unpaged expansions larger than this are too-costly
    max_cpt_expansion: int = 1_000  # tx.fhir.org caps CPT at 1000; the operator decides
    max_body_bytes: int = 10 * 1024 * 1024
    request_time_limit: float = 10.0  # seconds, checked inside expansion and regex
    max_regex_length: int = 500
    server: str = "granian"  # the production WSGI server: granian or gunicorn (server.py)
    workers: int = 2
    threads: int = 4
    log_level: str = "info"
    cache_dir: Path | None = None  # remembers validated content hashes; None: ~/.cache
    # Serialized answers of identical operation GETs, per worker (response_cache.py); 0: off.
    response_cache_bytes: int = 64 * 1024 * 1024
    # Where the order-set editor proposes new value sets' canonical urls start (url = base +
    # "/" + a slug of the title); empty: this server's own /fhir/ValueSet.
    editor_url_base: str = ""
    # Authored resources (terminology/store): '' is SQLite under data_dir; postgresql://...
    # when replicas share writes. Opened when writes are enabled or a store is named.
    store: str = field(default="", repr=False)  # a PostgreSQL URL may carry a password
    data_dir: Path | None = None  # None: $XDG_DATA_HOME/cpt-terminology (~/.local/share)
    store_poll_ms: int = 250  # how often a worker asks the store for writes of other replicas
    # Who may write (terminology/http/auth.py); writes are off unless one way is configured.
    write_tokens: str = field(default="", repr=False)  # comma-separated static bearer tokens
    write_tokens_file: Path | None = None  # or one token per line in a file
    jwt_jwks_url: str = ""  # JWT access tokens: keys from a JWKS URL...
    jwt_public_key: str = field(default="", repr=False)  # ...or a PEM public key (or its path)
    jwt_issuer: str = ""
    jwt_audience: str = ""
    read_requires_token: bool = False  # reads need a token with a read scope too

    @classmethod
    def from_env(cls) -> Settings:
        """Settings with defaults overridden by TX_* environment variables."""
        s = cls()
        for f in fields(cls):
            key = "TX_" + f.name.upper()
            if key not in os.environ:
                continue
            raw = os.environ[key]
            if f.name in ("content_dirs", "cpt_databases"):
                setattr(s, f.name, _env_list(key))
            elif f.name in ("cache_dir", "data_dir", "write_tokens_file"):
                setattr(s, f.name, Path(raw) if raw else None)
            elif isinstance(getattr(s, f.name), bool):
                setattr(s, f.name, raw.lower() in ("1", "true", "yes"))
            elif isinstance(getattr(s, f.name), int):
                setattr(s, f.name, int(raw))
            elif isinstance(getattr(s, f.name), float):
                setattr(s, f.name, float(raw))
            else:
                setattr(s, f.name, raw)
        return s

    def static_tokens(self) -> list[str]:
        """The static write tokens, from write_tokens and write_tokens_file."""
        tokens = [t.strip() for t in self.write_tokens.split(",") if t.strip()]
        if self.write_tokens_file is not None:
            tokens += [t.strip() for t in self.write_tokens_file.read_text().splitlines() if t.strip()]
        return tokens

    @property
    def jwt_enabled(self) -> bool:
        """Whether JWT access tokens are accepted (a key source, issuer and audience set)."""
        return bool((self.jwt_jwks_url or self.jwt_public_key) and self.jwt_issuer and self.jwt_audience)

    @property
    def writes_enabled(self) -> bool:
        """Writes are on only when a way to authorize them is configured."""
        return bool(self.write_tokens or self.write_tokens_file or self.jwt_enabled)

    def store_dir(self) -> Path:
        """The data directory: the SQLite store and the workers' change bell."""
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
        return self.data_dir or base / "cpt-terminology"

    def validation_cache(self) -> Path:
        """Where hashes of content already validated with fhir.resources are remembered."""
        base = self.cache_dir or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        return base / "cpt-terminology" / "validated.txt"
