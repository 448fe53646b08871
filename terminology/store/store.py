"""The Store: every version of every authored resource, written one transaction at a time.

A write (create, update, delete) is one transaction: increment the change counter (which
serializes writers), check If-Match and url|version uniqueness against the committed heads,
insert the new version, move the head, append to the change feed. Either all of it commits or
none of it does. Reads of history and single versions go to the database; the newest version
of each resource is served from the registry (content.py loads it, feed.py keeps it fresh).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, and_, create_engine, event, func, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from terminology.store.model import NotStored, StoredVersion, UniqueCanonical, VersionConflict
from terminology.store.notify import CHANNEL
from terminology.store.schema import changes, counter, heads, identity, migrate, versions

WRITE_OPTION = "tx_write"  # execution option marking a write transaction (SQLite: IMMEDIATE)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _sqlite_engine(url: str) -> Engine:
    path = url.removeprefix("sqlite:///")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, poolclass=NullPool if path == ":memory:" else None,
                           connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi: Any, _record: Any) -> None:
        dbapi.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cur = dbapi.cursor()
        cur.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
        cur.execute("PRAGMA synchronous=NORMAL")  # durable at each WAL checkpoint; safe in WAL
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # IMMEDIATE for writes: a writer takes the lock up front, so two writers queue
        # instead of one failing with 'database is locked' when it upgrades a read lock.
        # Reads begin deferred and, in WAL mode, never wait for a writer.
        write = conn.get_execution_options().get(WRITE_OPTION)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


class Store:
    """Versions of CodeSystem, ValueSet and ConceptMap resources in SQLite or PostgreSQL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
        if self.dialect == "sqlite":
            self.engine = _sqlite_engine(url)
        else:
            self.engine = create_engine(url, pool_size=4, max_overflow=4, pool_pre_ping=True)
        self._pid = os.getpid()

    def _conn(self) -> Engine:
        # A forked worker must not use the parent's pooled connections (SQLAlchemy's
        # documented fork recipe: drop them without closing the parent's sockets).
        if os.getpid() != self._pid:
            self.engine.dispose(close=False)
            self._pid = os.getpid()
        return self.engine

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A write transaction: committed when the block ends, rolled back on an exception."""
        with self._conn().connect() as conn:
            conn = conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn

    def migrate(self) -> int:
        """Create or upgrade the schema; the schema version."""
        with self._writing() as conn:
            return migrate(conn)

    def identity(self) -> str:
        """The store's own id (a UUID its first migration wrote; copies of the data share it)."""
        with self._conn().connect() as conn:
            return str(conn.execute(select(identity.c.uuid).where(identity.c.id == 1)).scalar())

    def location(self) -> str:
        """Where a SQLite store's file really is ('' for PostgreSQL, named by identity alone)."""
        if self.dialect != "sqlite":
            return ""
        path = self.url.removeprefix("sqlite:///")
        return path if path == ":memory:" else os.path.realpath(path)

    def close(self) -> None:
        """Close pooled connections (before forking workers, and at exit)."""
        self.engine.dispose()

    # -- writing ---------------------------------------------------------------------------

    def put(self, resource_type: str, rid: str, resource: dict[str, Any], *,
            if_match: int | None = None, must_not_exist: bool = False) -> tuple[StoredVersion, bool]:
        """Write a new version of resource_type/rid; (the version, whether it was created).

        `resource` gets meta.versionId and meta.lastUpdated. if_match: the version the
        writer read (VersionConflict when not current); must_not_exist: a create that must
        not replace anything (VersionConflict when it exists).
        """
        url = str(resource.get("url", ""))
        cversion = str(resource.get("version") or "")
        with self._writing() as conn:
            seq = self._next_seq(conn)
            head = self._head(conn, resource_type, rid)
            live = head is not None and not head.deleted
            if must_not_exist and live:
                raise VersionConflict(head.version_id if head else None)
            if if_match is not None and (not live or head is None or head.version_id != if_match):
                raise VersionConflict(head.version_id if live and head else None)
            other = conn.execute(select(heads.c.id).where(
                heads.c.resource_type == resource_type, heads.c.url == url,
                heads.c.canonical_version == cversion, heads.c.deleted.is_(False),
                heads.c.id != rid)).scalar()
            if other is not None:
                raise UniqueCanonical(other)
            vid = head.version_id + 1 if head else 1
            now = _now()
            body = {**resource, "id": rid,
                    "meta": {**resource.get("meta", {}), "versionId": str(vid), "lastUpdated": now}}
            self._record(conn, seq, resource_type, rid, vid, now, body, url, cversion, head is None)
        return StoredVersion(resource_type, rid, vid, now, False, body, seq), not live

    def delete(self, resource_type: str, rid: str, *, if_match: int | None = None) -> StoredVersion:
        """Record a delete of resource_type/rid as a new version; the deleted version."""
        with self._writing() as conn:
            seq = self._next_seq(conn)
            head = self._head(conn, resource_type, rid)
            if head is None:
                raise NotStored(f"{resource_type}/{rid}")
            if if_match is not None and (head.deleted or head.version_id != if_match):
                raise VersionConflict(None if head.deleted else head.version_id)
            if head.deleted:
                return head  # deleting a deleted resource changes nothing (the counter moved)
            vid, now = head.version_id + 1, _now()
            self._record(conn, seq, resource_type, rid, vid, now, None, None, None, False)
        return StoredVersion(resource_type, rid, vid, now, True, None, seq)

    def _next_seq(self, conn: Connection) -> int:
        row = conn.execute(update(counter).where(counter.c.id == 1)
                           .values(value=counter.c.value + 1).returning(counter.c.value)).scalar()
        if self.dialect == "postgresql":
            # delivered to every listening replica when (and only if) this transaction commits
            conn.execute(text("SELECT pg_notify(:channel, :seq)"), {"channel": CHANNEL, "seq": str(row)})
        return int(row or 0)

    def conninfo(self) -> str | None:
        """The libpq connection string of a PostgreSQL store (for LISTEN), else None."""
        if self.dialect != "postgresql":
            return None
        return self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    def _record(self, conn: Connection, seq: int, rtype: str, rid: str, vid: int, now: str,
                body: dict[str, Any] | None, url: str | None, cversion: str | None,
                new: bool) -> None:
        conn.execute(insert(versions).values(
            resource_type=rtype, id=rid, version_id=vid, deleted=body is None, last_updated=now,
            body=orjson.dumps(body).decode() if body is not None else None))
        values: dict[str, Any] = {"version_id": vid, "deleted": body is None, "last_updated": now}
        if url is not None:
            values.update(url=url, canonical_version=cversion or "")
        if new:
            conn.execute(insert(heads).values(resource_type=rtype, id=rid, **values))
        else:
            conn.execute(update(heads).where(heads.c.resource_type == rtype, heads.c.id == rid)
                         .values(**values))
        conn.execute(insert(changes).values(seq=seq, resource_type=rtype, id=rid, version_id=vid))

    # -- reading ---------------------------------------------------------------------------

    def _head(self, conn: Connection, rtype: str, rid: str) -> StoredVersion | None:
        row = conn.execute(select(heads.c.version_id, heads.c.last_updated, heads.c.deleted)
                           .where(heads.c.resource_type == rtype, heads.c.id == rid)).first()
        if row is None:
            return None
        return StoredVersion(rtype, rid, row.version_id, row.last_updated, row.deleted, None)

    def head(self, resource_type: str, rid: str) -> StoredVersion | None:
        """The newest version with its body (None when never written)."""
        with self._conn().connect() as conn:
            head = self._head(conn, resource_type, rid)
        if head is None:
            return None
        return self.version(resource_type, rid, head.version_id)

    def version(self, resource_type: str, rid: str, version_id: int) -> StoredVersion | None:
        """One version (vread); None when there is no such version."""
        with self._conn().connect() as conn:
            row = conn.execute(select(versions).where(
                versions.c.resource_type == resource_type, versions.c.id == rid,
                versions.c.version_id == version_id)).first()
        return _version(row) if row is not None else None

    def history(self, resource_type: str, rid: str, limit: int = 100) -> list[StoredVersion]:
        """Versions of one resource, newest first."""
        with self._conn().connect() as conn:
            rows = conn.execute(select(versions).where(
                versions.c.resource_type == resource_type, versions.c.id == rid)
                .order_by(versions.c.version_id.desc()).limit(limit)).all()
        return [_version(r) for r in rows]

    def change_number(self) -> int:
        """The number of the last committed write (cheap: one row)."""
        with self._conn().connect() as conn:
            return int(conn.execute(select(counter.c.value).where(counter.c.id == 1)).scalar() or 0)

    def changes_since(self, seq: int) -> tuple[int, list[StoredVersion]]:
        """(the last change number, the current version of each resource changed after `seq`)."""
        with self._conn().connect() as conn:
            rows = conn.execute(select(changes.c.seq, changes.c.resource_type, changes.c.id)
                                .where(changes.c.seq > seq).order_by(changes.c.seq)).all()
            if not rows:
                return seq, []
            last = max(r.seq for r in rows)
            touched = list(dict.fromkeys((r.resource_type, r.id) for r in rows))
            out = []
            for rtype, rid in touched:
                row = conn.execute(select(versions).select_from(versions.join(heads, and_(
                    heads.c.resource_type == versions.c.resource_type, heads.c.id == versions.c.id,
                    heads.c.version_id == versions.c.version_id)))
                    .where(heads.c.resource_type == rtype, heads.c.id == rid)).first()
                if row is not None:
                    out.append(_version(row))
        return last, out

    def current(self) -> tuple[int, Iterator[StoredVersion]]:
        """(the change number, every resource's current version, deleted ones included)."""
        seq = self.change_number()  # first: a write after it is applied again by the feed
        return seq, self._all_heads()

    def _all_heads(self) -> Iterator[StoredVersion]:
        with self._conn().connect() as conn:
            rows = conn.execute(select(versions).select_from(versions.join(heads, and_(
                heads.c.resource_type == versions.c.resource_type, heads.c.id == versions.c.id,
                heads.c.version_id == versions.c.version_id)))
                .order_by(versions.c.resource_type, versions.c.id)).all()
        for row in rows:
            yield _version(row)

    def count_versions(self) -> int:
        """How many versions are stored (all resources)."""
        with self._conn().connect() as conn:
            return int(conn.execute(select(func.count()).select_from(versions)).scalar() or 0)


def _version(row: Any) -> StoredVersion:
    body = orjson.loads(row.body) if row.body is not None else None
    return StoredVersion(row.resource_type, row.id, row.version_id, row.last_updated,
                         bool(row.deleted), body)
