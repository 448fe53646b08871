"""What the store hands out and refuses, without the database: its errors, a stored version,
and the URL a `store` setting names. The HTTP face imports these without loading SQLAlchemy,
which only a server with writes enabled needs (store.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


class StoreError(Exception):
    """A write the store refuses; the HTTP layer turns each kind into its status."""


class VersionConflict(StoreError):
    """If-Match named a version that is not the current one (412)."""

    def __init__(self, current: int | None) -> None:
        super().__init__(f"the current version is {current}" if current else "the resource does not exist")
        self.current = current


class UniqueCanonical(StoreError):
    """Another live resource of the type has the same url|version."""

    def __init__(self, other_id: str) -> None:
        super().__init__(f"already used by {other_id}")
        self.other_id = other_id


class NotStored(StoreError):
    """The resource was never written."""


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One version of a resource: its body (None when this version is a delete)."""

    resource_type: str
    id: str
    version_id: int
    last_updated: str  # FHIR instant, UTC
    deleted: bool
    resource: dict[str, Any] | None
    seq: int = 0  # the change number of the write that made it (0 when read back)


def store_url(store: str, data_dir: Path) -> str:
    """The SQLAlchemy URL for the `store` setting: '' is SQLite under data_dir."""
    if not store:
        return f"sqlite:///{data_dir / 'store.sqlite3'}"
    for prefix in ("postgresql://", "postgres://"):
        if store.startswith(prefix):
            return "postgresql+psycopg://" + store[len(prefix):]
    return store
