"""`cache-id`: supporting content a client sends once and then names, as tx.fhir.org allows.

A client (HL7's Java validator does this when TerminologyCapabilities lists an expansion
parameter named `cache-id`) sends a `cache-id` parameter with its `tx-resource` resources;
later requests that send the same `cache-id` have every resource sent under it in scope,
even when they carry no `tx-resource` of their own. A resource sent again (same type, url and
version) replaces the one remembered.

The store is per worker process and bounded: at most `max_ids` ids, at most `max_bytes` of
resource JSON over all ids (least recently used ids go first), and an id not used for
`ttl` seconds is forgotten. One id may never hold more than `max_bytes`: that request is
too costly. Ids are compared exactly; one client's id never sees another id's resources.
A worker that never saw an id (another worker, a restart) simply has nothing for it, so
clients that rely on cache-id must resend their content when a code system goes missing;
the Java validator does.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from terminology.errors import BadRequest, TooCostly
from terminology.registry import Registry

ResourceKey = tuple[str, str, str]
MAX_ID_LENGTH = 200


@dataclass
class _Entry:
    """What one cache-id holds: resources by (type, url, version), and the overlay built."""

    resources: dict[ResourceKey, tuple[dict[str, Any], int]] = field(default_factory=dict)
    size: int = 0
    touched: float = 0.0
    overlay: Registry | None = None


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


class CachedResources:
    """The per-worker cache-id store (thread-safe)."""

    def __init__(self, max_ids: int, max_bytes: int, ttl: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_ids = max_ids
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        """Bytes of resource JSON held over all ids."""
        return self._size

    def scoped(self, cache_id: str, sent: list[dict[str, Any]], base: Registry,
               build: Callable[[Registry, list[dict[str, Any]]], Registry]) -> Registry:
        """The registry for a request naming `cache_id`: remember `sent`, and answer `base`
        overlaid with everything the id holds. `build` makes (and validates) the overlay;
        it is rebuilt only when the id's content changed."""
        check_cache_id(cache_id)
        now = self._clock()
        with self._lock:
            self._expire(now)
            entry = self._entries.get(cache_id)
            held = dict(entry.resources) if entry is not None else {}
            overlay = entry.overlay if entry is not None else None
        changed = False
        for resource in sent:
            key = resource_key(resource)
            if key in held and held[key][0] == resource:
                continue
            held[key] = (resource, len(orjson.dumps(resource)))
            changed = True
        size = sum(n for _, n in held.values())
        if size > self.max_bytes:
            raise TooCostly(f"The content sent under cache-id '{cache_id}' is larger than the "
                            f"{self.max_bytes} bytes one cache-id may hold",
                            expression="cache-id", message_id=None)
        if overlay is None or changed:
            # built (and validated) before anything is remembered: a bad resource is a 400
            # for this request and never poisons the id
            overlay = build(base, [r for r, _ in held.values()])
        with self._lock:
            old = self._entries.pop(cache_id, None)
            if old is not None:
                self._size -= old.size
            self._entries[cache_id] = _Entry(held, size, now, overlay)
            self._size += size
            self._evict(keep=cache_id)
        return overlay

    def _expire(self, now: float) -> None:
        for cid in [c for c, e in self._entries.items() if now - e.touched > self.ttl]:
            self._size -= self._entries.pop(cid).size

    def _evict(self, keep: str) -> None:
        while (self._size > self.max_bytes or len(self._entries) > self.max_ids) and len(self._entries) > 1:
            cid = next(iter(self._entries))
            if cid == keep:
                self._entries.move_to_end(cid)
                continue
            self._size -= self._entries.pop(cid).size
