"""The store's tables (SQLAlchemy Core) and its numbered migrations.

Why not Alembic: the schema is five small tables that must migrate in-process at start-up,
identically on SQLite and PostgreSQL, with replicas starting at the same moment. A numbered
list of migration functions applied inside one locked transaction does that with no
configuration files or script directory to ship; each migration is plain SQLAlchemy Core.
A migration is never edited once released: a schema change is a new entry in MIGRATIONS.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    text,
)

metadata = MetaData()

# The newest version of each resource: what the registry serves, and what If-Match compares.
heads = Table(
    "tx_resource", metadata,
    Column("resource_type", String(32), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("version_id", Integer, nullable=False),
    Column("url", String(2048), nullable=False),
    Column("canonical_version", String(256), nullable=False),  # '' when the resource has none
    Column("deleted", Boolean, nullable=False),
    Column("last_updated", String(40), nullable=False),
)
# url|version is unique among live resources of a type: a guard under the check in store.py.
Index("tx_resource_canonical", heads.c.resource_type, heads.c.url, heads.c.canonical_version,
      unique=True, sqlite_where=heads.c.deleted.is_(False),
      postgresql_where=heads.c.deleted.is_(False))

# Every version ever written (a delete is a version with no body), for _history and vread.
versions = Table(
    "tx_resource_version", metadata,
    Column("resource_type", String(32), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("version_id", Integer, primary_key=True),
    Column("deleted", Boolean, nullable=False),
    Column("last_updated", String(40), nullable=False),
    Column("body", Text, nullable=True),
)

# The change feed: one row per write, numbered by the counter below. Followers (every worker
# of every replica) read the rows after the last number they applied.
changes = Table(
    "tx_change", metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("resource_type", String(32), nullable=False),
    Column("id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
)

# One row. A write increments it first: that row lock serializes writers, so change numbers
# commit in order (a sequence would let number 11 commit before 10 and a follower skip 10).
counter = Table(
    "tx_counter", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("value", BigInteger, nullable=False),
)

# One row: who this store is. The bell of its workers (store/feed.py) is named by it, so two
# stores never share a bell even when their instances share a data directory.
identity = Table(
    "tx_store_identity", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("uuid", String(36), nullable=False),
)

schema_versions = Table(
    "tx_schema_version", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied", String(40), nullable=False),
)


def _v1_initial(conn: Connection) -> None:
    for table in (heads, versions, changes, counter):
        table.create(conn)
    conn.execute(insert(counter).values(id=1, value=0))


def _v2_identity(conn: Connection) -> None:
    identity.create(conn)
    conn.execute(insert(identity).values(id=1, uuid=str(uuid.uuid4())))


MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _v1_initial),
    (2, _v2_identity),
]


def migrate(conn: Connection) -> int:
    """Apply every migration not yet applied, in one transaction the caller holds; the version."""
    if conn.dialect.name == "postgresql":
        # replicas starting together: one migrates, the others wait here and then see it done
        conn.execute(text("SELECT pg_advisory_xact_lock(727170001)"))
    schema_versions.create(conn, checkfirst=True)
    done = set(conn.execute(select(schema_versions.c.version)).scalars())
    for number, step in MIGRATIONS:
        if number in done:
            continue
        step(conn)
        conn.execute(insert(schema_versions).values(
            version=number, applied=datetime.now(UTC).isoformat(timespec="seconds")))
    return max(n for n, _ in MIGRATIONS)
