"""`cache-id`: supporting content a client sends once and then names, as tx.fhir.org allows.

A client (HL7's Java validator does this when TerminologyCapabilities lists an expansion
parameter named `cache-id`) sends a `cache-id` parameter with its `tx-resource` resources;
later requests that send the same `cache-id` have every resource sent under it in scope,
even when they carry no `tx-resource` of their own. A resource sent again (same type, url and
version) replaces the one remembered.

Where it lives: in two small SQL tables that every worker of the server reads, so the
request naming an id finds it whichever worker (or replica) gets it:
- a SQLite file private to this server instance (`private_database`: made by the main
  process in the temp directory before the workers fork, removed when it exits), which is
  the default and needs no setting; the instance's workers share it, nothing else does;
- the PostgreSQL database of the store when replicas share one (`postgres_database`), so
  every replica finds the content.
Why not diskcache (a well-kept SQLite cache on PyPI): it cannot span replicas, which
PostgreSQL must, and its eviction bounds one cache's bytes, not ids; the same two tables on
SQLite and PostgreSQL give one behaviour and the bounds below exactly. Each worker keeps
only the overlay it built for an id, tagged with the id's generation, and rebuilds it when
another worker changed what the id holds.

Bounds (settings): at most `max_ids` ids, at most `max_bytes` of resource JSON over all ids
(least recently used ids go first), and an id not used for `ttl` seconds is forgotten. One
id may never hold more than `max_bytes`: that request is too costly. Ids are compared
exactly; one client's id never sees another id's resources. If the database cannot be
reached, a request is served with the content it carries itself (logged), never failed.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sqlite3
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from terminology.errors import BadRequest, TooCostly
from terminology.registry import Registry

ResourceKey = tuple[str, str, str]
MAX_ID_LENGTH = 200
log = logging.getLogger("terminology.cache_ids")
_TABLES = (
    "CREATE TABLE IF NOT EXISTS tx_cache_id (cache_id TEXT PRIMARY KEY, touched DOUBLE PRECISION "
    "NOT NULL, used BIGINT NOT NULL, size BIGINT NOT NULL, generation BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tx_cache_id_resource (cache_id TEXT NOT NULL, rkey TEXT NOT NULL, "
    "body TEXT NOT NULL, size BIGINT NOT NULL, PRIMARY KEY (cache_id, rkey))",
)
_PG_LOCK = 727170003  # advisory lock: one cache-id write at a time over all replicas


def resource_key(resource: dict[str, Any]) -> ResourceKey:
    """(type, url, version); a resource without url is keyed by its content."""
    url = resource.get("url")
    if not isinstance(url, str) or not url:
        url = "#" + orjson.dumps(resource, option=orjson.OPT_SORT_KEYS).hex()[:64]
    version = resource.get("version")
    return (str(resource.get("resourceType")), url, version if isinstance(version, str) else "")


def check_cache_id(value: str) -> str:
    """The cache-id if it is a sane token; 400 otherwise."""
    if not value or len(value) > MAX_ID_LENGTH or not value.isprintable():
        raise BadRequest(f"The cache-id must be 1 to {MAX_ID_LENGTH} printable characters",
                         expression="cache-id")
    return value


class Database:
    """The tables' connection in this process (reopened after a fork), one user at a time."""

    def __init__(self, connect: Callable[[], Any], dialect: str, shared: bool) -> None:
        self._connect = connect
        self.dialect = dialect
        self.shared = shared  # every worker (sqlite file) or replica (postgresql) sees it
        self._conn: Any = None
        self._pid = 0
        self._lock = threading.Lock()
        self.errors: tuple[type[BaseException], ...] = (sqlite3.Error,)

    def _connection(self) -> Any:
        if self._conn is None or self._pid != os.getpid():
            self._conn, self._pid = self._connect(), os.getpid()
            with self._begin(self._conn, write=True):
                for ddl in _TABLES:
                    self._conn.execute(ddl)
        return self._conn

    @contextlib.contextmanager
    def _begin(self, conn: Any, write: bool) -> Iterator[None]:
        if self.dialect == "sqlite":
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        elif write:
            conn.execute(f"SELECT pg_advisory_xact_lock({_PG_LOCK})")
        try:
            yield
        except BaseException:
            conn.rollback()
            raise
        conn.commit()

    @contextlib.contextmanager
    def transaction(self, write: bool) -> Iterator[Callable[..., list[Any]]]:
        """`run(sql, *params) -> rows` inside one transaction (committed at the end)."""
        with self._lock:
            try:
                conn = self._connection()
            except self.errors:
                self._conn = None
                raise

            def run(sql: str, *params: Any) -> list[Any]:
                if self.dialect != "sqlite":
                    sql = sql.replace("?", "%s")
                cur = conn.execute(sql, params)
                return list(cur.fetchall()) if cur.description else []

            try:
                with self._begin(conn, write):
                    yield run
            except self.errors:
                with contextlib.suppress(Exception):
                    conn.close()
                self._conn = None
                raise


def sqlite_database(path: str, shared: bool) -> Database:
    """The tables in the SQLite file at `path` (':memory:': this process only)."""

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        if path != ":memory:":
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    return Database(connect, "sqlite", shared)


def private_database() -> Database:
    """A SQLite file of this server instance, shared by the workers it forks, removed when the
    process that made it exits; this process's memory if no file can be made."""
    try:
        fd, name = tempfile.mkstemp(prefix="tx-cache-ids-", suffix=".sqlite3")
    except OSError as e:
        log.warning("no file for cache-id content (%s): each worker keeps its own", e)
        return sqlite_database(":memory:", shared=False)
    os.close(fd)
    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    Path(name + suffix).unlink()

    atexit.register(remove)
    return sqlite_database(name, shared=True)


def postgres_database(conninfo: str) -> Database:
    """The tables in the store's PostgreSQL database: shared by every replica."""
    import psycopg

    db = Database(lambda: psycopg.connect(conninfo), "postgresql", shared=True)
    db.errors = (psycopg.Error, sqlite3.Error)
    return db


@dataclass
class _Built:
    generation: int
    overlay: Registry


class CachedResources:
    """The cache-id store of a server (thread-safe; shared by workers through `db`)."""

    def __init__(self, max_ids: int, max_bytes: int, ttl: float,
                 clock: Callable[[], float] = time.time, db: Database | None = None) -> None:
        self.max_ids = max_ids
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._clock = clock
        self.db = db if db is not None else sqlite_database(":memory:", shared=False)
        self._built: OrderedDict[str, _Built] = OrderedDict()  # this worker's overlays
        self._lock = threading.Lock()

    @property
    def shared(self) -> bool:
        """Whether every worker finds what one was sent (TerminologyCapabilities says so)."""
        return self.db.shared

    def __len__(self) -> int:
        with self.db.transaction(write=False) as run:
            return int(run("SELECT count(*) FROM tx_cache_id WHERE touched >= ?",
                           self._clock() - self.ttl)[0][0])

    @property
    def size(self) -> int:
        """Bytes of resource JSON held over all ids."""
        with self.db.transaction(write=False) as run:
            return int(run("SELECT coalesce(sum(size), 0) FROM tx_cache_id")[0][0])

    def scoped(self, cache_id: str, sent: list[dict[str, Any]], base: Registry,
               build: Callable[[Registry, list[dict[str, Any]]], Registry]) -> Registry:
        """The registry for a request naming `cache_id`: remember `sent`, and answer `base`
        overlaid with everything the id holds. `build` makes (and validates) the overlay;
        it is rebuilt only when the id's content changed."""
        check_cache_id(cache_id)
        try:
            return self._scoped(cache_id, sent, base, build)
        except self.db.errors as e:
            log.warning("cache-id content unavailable (%s): serving what the request carries",
                        type(e).__name__)
            return build(base, sent)

    def _scoped(self, cache_id: str, sent: list[dict[str, Any]], base: Registry,
                build: Callable[[Registry, list[dict[str, Any]]], Registry]) -> Registry:
        now = self._clock()
        with self._lock:
            built = self._built.get(cache_id)
        with self.db.transaction(write=False) as run:
            row = run("SELECT generation, touched, used, (SELECT max(used) FROM tx_cache_id) "
                      "FROM tx_cache_id WHERE cache_id = ?", cache_id)
            live = bool(row) and now - row[0][1] <= self.ttl
            generation = row[0][0] if live else -1
            current = built is not None and built.generation == generation
            held: dict[str, tuple[dict[str, Any], int]] = {}
            if live and (sent or not current):
                held = {k: (orjson.loads(b), n) for k, b, n in run(
                    "SELECT rkey, body, size FROM tx_cache_id_resource WHERE cache_id = ?", cache_id)}
        changed = {}
        for resource in sent:
            key = orjson.dumps(resource_key(resource)).decode()
            if key not in held or held[key][0] != resource:
                changed[key] = (resource, len(orjson.dumps(resource)))
        if live and not changed:  # only named: the common case, a read unless it must be touched
            overlay = built.overlay if built is not None and current else build(
                base, [r for r, _ in held.values()])
            if row[0][2] != row[0][3] or now - row[0][1] > self.ttl / 10:
                self._touch(cache_id, now)
            return self._remember(cache_id, _Built(generation, overlay))
        held.update(changed)
        self._check_size(cache_id, sum(n for _, n in held.values()))
        # built (and validated) before anything is remembered: a bad resource is a 400 for
        # this request and never poisons the id
        overlay = build(base, [r for r, _ in held.values()])
        new_generation, merged = self._write(cache_id, changed, now, generation)
        if merged is not None:  # another worker changed the id meanwhile
            overlay = build(base, merged)
        return self._remember(cache_id, _Built(new_generation, overlay))

    def _check_size(self, cache_id: str, size: int) -> None:
        if size > self.max_bytes:
            raise TooCostly(f"The content sent under cache-id '{cache_id}' is larger than the "
                            f"{self.max_bytes} bytes one cache-id may hold",
                            expression="cache-id", message_id=None)

    def _remember(self, cache_id: str, built: _Built) -> Registry:
        with self._lock:
            self._built[cache_id] = built
            self._built.move_to_end(cache_id)
            while len(self._built) > self.max_ids:
                self._built.popitem(last=False)
        return built.overlay

    def _touch(self, cache_id: str, now: float) -> None:
        with self.db.transaction(write=True) as run:
            run("UPDATE tx_cache_id SET touched = ?, used = (SELECT coalesce(max(used), 0) + 1 "
                "FROM tx_cache_id) WHERE cache_id = ?", now, cache_id)

    def _write(self, cache_id: str, changed: dict[str, tuple[dict[str, Any], int]], now: float,
               read: int) -> tuple[int, list[dict[str, Any]] | None]:
        """Store the changed resources, expire and evict; (the id's generation, its whole
        content when another worker changed it since generation `read` was read here)."""
        with self.db.transaction(write=True) as run:
            self._expire(run, now)
            row = run("SELECT generation FROM tx_cache_id WHERE cache_id = ?", cache_id)
            before = row[0][0] if row else -1
            for key, (resource, n) in changed.items():
                run("INSERT INTO tx_cache_id_resource (cache_id, rkey, body, size) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (cache_id, rkey) DO UPDATE SET body = excluded.body, size = excluded.size",
                    cache_id, key, orjson.dumps(resource).decode(), n)
            size = int(run("SELECT coalesce(sum(size), 0) FROM tx_cache_id_resource WHERE cache_id = ?",
                           cache_id)[0][0])
            self._check_size(cache_id, size)  # a concurrent addition may push it over: undone
            generation = before + 1 if changed or not row else before
            run("INSERT INTO tx_cache_id (cache_id, touched, used, size, generation) VALUES "
                "(?, ?, (SELECT coalesce(max(used), 0) + 1 FROM tx_cache_id), ?, ?) "
                "ON CONFLICT (cache_id) DO UPDATE SET touched = excluded.touched, used = "
                "excluded.used, size = excluded.size, generation = excluded.generation",
                cache_id, now, size, generation)
            self._evict(run, cache_id)
            merged = None
            if before != read:
                merged = [orjson.loads(b) for (b,) in run(
                    "SELECT body FROM tx_cache_id_resource WHERE cache_id = ?", cache_id)]
        return generation, merged

    def _expire(self, run: Callable[..., list[Any]], now: float) -> None:
        old = [c for (c,) in run("SELECT cache_id FROM tx_cache_id WHERE touched < ?", now - self.ttl)]
        for cid in old:
            run("DELETE FROM tx_cache_id_resource WHERE cache_id = ?", cid)
            run("DELETE FROM tx_cache_id WHERE cache_id = ?", cid)

    def _evict(self, run: Callable[..., list[Any]], keep: str) -> None:
        """Least recently used ids go until the count and the bytes are within bounds."""
        for _ in range(self.max_ids + 1000):
            count, total = run("SELECT count(*), coalesce(sum(size), 0) FROM tx_cache_id")[0]
            if count <= self.max_ids and total <= self.max_bytes:
                return
            oldest = run("SELECT cache_id FROM tx_cache_id WHERE cache_id <> ? ORDER BY used LIMIT 1", keep)
            if not oldest:
                return
            run("DELETE FROM tx_cache_id_resource WHERE cache_id = ?", oldest[0][0])
            run("DELETE FROM tx_cache_id WHERE cache_id = ?", oldest[0][0])
