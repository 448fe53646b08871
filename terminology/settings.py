"""One Settings object: content paths, limits and server options, from env vars and CLI flags.

Every field of `Settings` is a setting: its environment variable is TX_<FIELD NAME IN UPPER
CASE>, its type is the field's annotation and its description is the field's `help`
metadata. Reading (`from_env`) and checking (`check`) happen here and only here; a bad value
raises `SettingsError`, whose one-line message names the variable and what it expects (the
CLI prints it and exits 2). `python -m terminology.settings` prints the Markdown table of
every setting that README.md carries.
"""

from __future__ import annotations

import os
import types
import typing
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any

# The shipped content: inside the package when installed from a wheel (setup.py copies it
# there), else codesystems/ at the top of the checkout.
_PACKAGED_CONTENT = Path(__file__).resolve().parent / "codesystems"
BUNDLED_CONTENT = (_PACKAGED_CONTENT if _PACKAGED_CONTENT.is_dir()
                   else Path(__file__).resolve().parent.parent / "codesystems")
# The statement tx.fhir.org adds to every CPT $lookup answer (the AMA's notice for CPT
# content distributed through HL7's terminology services).
CPT_COPYRIGHT_NOTICE = ("This response content from CPT, which is copyright © 2002+ American "
                        "Medical Association, and distributed by agreement between AMA and HL7.")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off", "")


class SettingsError(ValueError):
    """A setting with a value it cannot take; str() is the one line an operator sees."""


def setting(default: Any = MISSING, help: str = "", *, factory: Any = MISSING,
            choices: tuple[str, ...] = (), minimum: float | None = None,
            maximum: float | None = None, secret: bool = False) -> Any:
    """A Settings field with its description and the checks its values must pass."""
    meta = {"help": help, "choices": choices, "minimum": minimum, "maximum": maximum,
            "secret": secret}
    # A secret never appears in repr(settings), so logging the settings cannot leak it.
    if factory is not MISSING:
        return field(default_factory=factory, metadata=meta, repr=not secret)
    return field(default=default, metadata=meta, repr=not secret)


@dataclass
class Settings:
    """Everything an operator can configure. Env vars are TX_<FIELD NAME IN UPPER CASE>."""

    host: str = setting("127.0.0.1", "address to bind (0.0.0.0: every interface)")
    port: int = setting(8080, "TCP port of the FHIR API", minimum=1, maximum=65535)
    content_dirs: list[Path] = setting(
        help="folders (or files) of FHIR JSON content, separated by ':'",
        factory=lambda: [BUNDLED_CONTENT])
    packages: list[Path] = setting(
        help="FHIR packages (.tgz, or an extracted folder with package/package.json), "
             "separated by ':'; their CodeSystems, ValueSets and ConceptMaps are loaded",
        factory=list)
    cpt_databases: list[Path] = setting(
        help="CPT SQLite databases, separated by ':' (several versions side by side); a "
             "folder means every *.db in it",
        factory=list)
    cpt_copyright: str = setting(CPT_COPYRIGHT_NOTICE,
                                 "copyright notice in every CPT $lookup answer")
    # Limits, enforced in one place each.
    max_expansion_size: int = setting(10_000, "largest unpaged expansion before too-costly",
                                      minimum=1)
    max_cpt_expansion: int = setting(1_000, "largest CPT expansion (tx.fhir.org caps at 1000), "
                                            "and most distinct CPT descriptors in any one answer",
                                     minimum=1)
    # terminology/cpt/rules.py RULE_SETS; content.load_content checks the name as well.
    cpt_rules: str = setting(
        "cpt", "which rules make a CPT expression (72126:26) valid: cpt (CPT and CMS "
               "guidance) or tx.fhir.org (its rules exactly)", choices=("cpt", "tx.fhir.org"))
    max_body_bytes: int = setting(10 * 1024 * 1024, "largest request body in bytes, after gzip "
                                  "decoding too (413 above)", minimum=1)
    # URL and header limits below granian's own (about 64 kB of URL, 408 kB or 100 header
    # fields), which it answers itself with an empty 414/431: these get an OperationOutcome
    max_url_bytes: int = setting(32 * 1024, "longest request URL in bytes (414 above)", minimum=1)
    max_header_bytes: int = setting(64 * 1024, "largest request headers in bytes (431 above)",
                                    minimum=1)
    max_json_depth: int = setting(64, "deepest nesting of objects and arrays in a JSON body "
                                  "(400 above; orjson stops at 1024 anyway)", minimum=1,
                                  maximum=1000)
    max_batch_entries: int = setting(
        1_000, "entries of one POST /fhir batch Bundle (and validations of one "
               "$batch-validate-code); more is too-costly", minimum=1)
    # cache-id (terminology/cache_ids.py): shared by the workers (and by the replicas of a
    # PostgreSQL store): ids, bytes of resource JSON, idle expiry
    cache_id_max_ids: int = setting(256, "cache-ids remembered (all workers)", minimum=1)
    cache_id_max_bytes: int = setting(64 * 1024 * 1024, "bytes of resource JSON kept under "
                                      "cache-ids (all workers)", minimum=0)
    cache_id_ttl: float = setting(3600.0, "seconds an idle cache-id is kept", minimum=1)
    request_time_limit: float = setting(
        10.0, "seconds an expansion or regex may run before too-costly", minimum=0.001)
    max_regex_length: int = setting(500, "longest regex filter accepted", minimum=1)
    server: str = setting("granian", "production WSGI server (server.py)",
                          choices=("granian", "gunicorn"))
    workers: int = setting(2, "worker processes (content is loaded once, before forking)",
                           minimum=1)
    threads: int = setting(4, "threads per worker", minimum=1)
    # Slow clients (http/server/slow_clients.py): the production server bounds them by itself.
    body_timeout: float = setting(10.0, "seconds a request body may take to arrive whole "
                                  "(408 after)", minimum=0.1)
    header_timeout: float = setting(10.0, "seconds a request's header block may take to "
                                    "arrive (the connection is closed after)", minimum=1)
    body_threads: int = setting(64, "threads per worker that wait for request bodies "
                                "(stalled uploads wait there, not in the `threads`)", minimum=1)
    log_level: str = setting("info", "log level", choices=("debug", "info", "warning", "error"))
    cache_dir: Path | None = setting(
        None, "where hashes of validated content, and the codes changed between CPT "
              "releases, are remembered (unset: ~/.cache)")
    # Serialized answers of identical operation GETs, per worker (response_cache.py); 0: off.
    response_cache_bytes: int = setting(
        64 * 1024 * 1024, "per-worker cache of answers to repeated operation GETs (0: off)",
        minimum=0)
    fast_dispatch: bool = setting(
        True, "answer type-level operation GETs in front of Flask, with the same bytes "
              "(http/fhir/dispatch.py)")
    metrics: bool = setting(True, "serve Prometheus metrics at GET /metrics")
    metrics_port: int = setting(
        0, "serve /metrics on this port of `host` instead of the API port (0: the API port)",
        minimum=0, maximum=65535)
    pid_file: Path | None = setting(
        None, "file the server writes its main process id to (for `terminology reload`)")
    admin_token: str = setting(
        "", "bearer token of POST /admin/reload (unset: the endpoint is off)", secret=True)
    operation_cache_control: str = setting(
        "public, max-age=3600", "Cache-Control of 200 answers to operation GETs (empty: none)")
    gzip: bool = setting(False, "gzip answers over gzip_min_bytes in the app, for clients that "
                         "accept it (off: it costs more than it saves; nginx compresses)")
    gzip_min_bytes: int = setting(1024, "smallest answer the in-app gzip compresses", minimum=0)
    # Where the order-set editor proposes new value sets' canonical urls start (url = base +
    # "/" + a slug of the title); empty: this server's own /fhir/ValueSet.
    editor_url_base: str = setting("", "where the order-set editor's proposed value set urls "
                                   "start (empty: this server's /fhir/ValueSet)")
    # Authored resources (terminology/store): '' is SQLite under data_dir; postgresql://...
    # when replicas share writes. Opened when writes are enabled or a store is named.
    store: str = setting("", "where authored resources live: empty for SQLite under the data "
                         "directory, postgresql://... when replicas share writes", secret=True)
    data_dir: Path | None = setting(
        None, "the data directory: the SQLite store and the workers' change bell "
              "(unset: $XDG_DATA_HOME/cpt-terminology)")
    store_poll_ms: int = setting(250, "how often (ms) a worker asks the store for writes of "
                                 "other replicas", minimum=10)
    # Who may write (terminology/http/authoring/auth.py); writes are off unless one way is configured.
    write_tokens: str = setting("", "comma-separated static bearer tokens that may write",
                                secret=True)
    write_tokens_file: Path | None = setting(None, "file of static write tokens, one per line")
    jwt_jwks_url: str = setting("", "JWKS URL of the keys that sign JWT access tokens")
    jwt_public_key: str = setting("", "PEM public key (or its path) that signs JWT access "
                                  "tokens", secret=True)
    jwt_issuer: str = setting("", "the issuer JWT access tokens must name")
    jwt_audience: str = setting("", "the audience JWT access tokens must name")
    read_requires_token: bool = setting(False, "reads need a token with a read scope too")
    cpt_text_requires_token: bool = setting(
        False, "CPT descriptors (display, designations, definitions) only for a caller with a "
               "token with a read scope; others get codes and results without the text")

    @classmethod
    def from_env(cls, environ: typing.Mapping[str, str] | None = None) -> Settings:
        """Settings with defaults overridden by TX_* environment variables, checked."""
        environ = os.environ if environ is None else environ
        s = cls()
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            key = env_name(f)
            if key in environ:
                setattr(s, f.name, parse_value(f, hints[f.name], environ[key], key))
        s.check()
        return s

    def check(self) -> None:
        """Raise SettingsError naming the first field whose value breaks its rules."""
        for f in fields(self):
            value = getattr(self, f.name)
            meta = f.metadata
            where = f"{env_name(f)}={value!r}" if not meta.get("secret") else env_name(f)
            if meta.get("choices") and value not in meta["choices"]:
                raise SettingsError(f"{where}: expected one of {', '.join(meta['choices'])}")
            low, high = meta.get("minimum"), meta.get("maximum")
            if isinstance(value, int | float) and not isinstance(value, bool) and (
                    (low is not None and value < low) or (high is not None and value > high)):
                raise SettingsError(f"{where}: expected {_range(low, high)} ({meta['help']})")

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

    def release_changes_cache(self) -> Path:
        """Where the codes changed between consecutive CPT databases are remembered
        (terminology.cpt.compare.ChangesMemo)."""
        base = self.cache_dir or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        return base / "cpt-terminology" / "cpt-release-changes.json"


def env_name(f: Field[Any]) -> str:
    """The environment variable of a Settings field."""
    return "TX_" + f.name.upper()


def _range(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"a number from {low:g} to {high:g}"
    return f"a number of at least {low:g}" if low is not None else f"a number of at most {high:g}"


def _base_type(hint: Any) -> tuple[Any, bool]:
    """(the type inside Optional[...], whether None is allowed)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return (inner[0] if len(inner) == 1 else str), True
    return hint, False


def parse_value(f: Field[Any], hint: Any, raw: str, key: str) -> Any:
    """The value of field `f` from its environment string; SettingsError when it cannot be."""
    base, optional = _base_type(hint)
    what = f.metadata.get("help", "")
    if optional and raw == "":
        return None
    if typing.get_origin(base) is list:
        (item,) = typing.get_args(base) or (str,)
        return [item(p) for p in raw.split(os.pathsep) if p]
    if base is bool:
        if raw.lower() in TRUE_WORDS:
            return True
        if raw.lower() in FALSE_WORDS:
            return False
        raise SettingsError(f"{key}={raw!r}: expected true or false ({what})")
    if base in (int, float):
        try:
            return base(raw.replace("_", ""))
        except ValueError:
            noun = "an integer" if base is int else "a number"
            raise SettingsError(f"{key}={raw!r}: expected {noun} ({what})") from None
    if base is Path:
        return Path(raw)
    return raw


def _shown_default(f: Field[Any]) -> str:
    value = f.default_factory() if f.default_factory is not MISSING else f.default
    if isinstance(value, list):
        return os.pathsep.join(str(p) for p in value) or "(none)"
    if value is None or value == "":
        return "(unset)"
    if value == CPT_COPYRIGHT_NOTICE:
        return "the AMA notice tx.fhir.org sends"
    return str(value).lower() if isinstance(value, bool) else str(value)


def settings_help() -> str:
    """Every setting as 'VARIABLE (default): description' lines, for `serve --help`."""
    lines = ["settings (environment variables; a command-line flag wins over its variable):"]
    for f in fields(Settings):
        choices = f.metadata.get("choices")
        one_of = f" (one of {', '.join(choices)})" if choices else ""
        lines.append(f"  {env_name(f):26} {f.metadata.get('help', '')}{one_of} "
                     f"[default: {_shown_default(f)}]")
    return "\n".join(lines)


def settings_markdown() -> str:
    """Every setting as a Markdown table (README.md's Environment variables)."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for f in fields(Settings):
        default = _shown_default(f).replace(str(BUNDLED_CONTENT), "the bundled codesystems/")
        text = f.metadata.get("help", "").replace("*", "\\*").replace("|", "\\|")
        if f.metadata.get("choices"):
            text += f" (one of {', '.join(f.metadata['choices'])})"
        rows.append(f"| `{env_name(f)}` | {default} | {text} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_markdown())
