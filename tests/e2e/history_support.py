"""Read-your-writes, observed from outside: every read path, and a checker of recorded histories.

A value set under test carries its own revision in its content: version n (meta.versionId n)
has the title `rev n` and includes the body-site code `spine` when n is odd, `limb` when it is
even. So every read path says which version it answered from: a read, search, batch entry
or 304 by meta.versionId, an `$expand` by the title it copies, a `$validate-code` by whether
`spine` is in the value set (the parity of the version).

Each read goes out on a new connection (no session), anonymous unless the path says token,
as the order-entry client of the issue does.

The checker (`check`) takes every operation's start, end and outcome and asserts, per
resource: no read that started after a write was acknowledged answers an older version; a
reader never sees versions go backwards; once a delete is acknowledged the resource is gone
(410) for every read that starts later, and never comes back. On a failure it names the
shortest history that shows it: the acknowledged write and the read that contradicts it.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import requests

from ..conftest import BODY_SITE

FHIR = "application/fhir+json"
GONE = -1  # a read that answered 410 (deleted)
ABSENT = -2  # a read that answered 404 / nothing found
_XML_VERSION = re.compile(rb'<versionId value="(\d+)"')
_TITLE = re.compile(r"^rev (\d+)$")


def revision(url: str, n: int, rid: str | None = None) -> dict[str, Any]:
    """The value set at url as its version n says it is (title, and spine/limb by parity)."""
    vs: dict[str, Any] = {
        "resourceType": "ValueSet", "url": url, "status": "draft", "name": "OrderSet",
        "title": f"rev {n}",
        "compose": {"include": [{"system": BODY_SITE,
                                 "concept": [{"code": "spine" if n % 2 else "limb"}]}]}}
    if rid is not None:
        vs["id"] = rid
    return vs


@dataclass(frozen=True)
class Seen:
    """What one read answered: an exact version, or only its parity ($validate-code)."""

    version: int  # GONE, ABSENT, the exact version, or 0 when only the parity is known
    parity: int | None = None  # 1 odd, 0 even; only for $validate-code

    def could_be(self, v: int) -> bool:
        """Whether this answer is what version v (or GONE/ABSENT) would give."""
        if self.parity is not None:
            return v > 0 and v % 2 == self.parity
        return self.version == v

    def __str__(self) -> str:
        if self.parity is not None:
            return f"a version with {'spine' if self.parity else 'limb'} (parity {self.parity})"
        return {GONE: "410 Gone", ABSENT: "404 / not found"}.get(self.version, f"version {self.version}")


class UnexpectedAnswer(Exception):
    """A read answered something that is no version at all (5xx, a wrong shape)."""


def _get(url: str, **kw: Any) -> requests.Response:
    headers = {"Connection": "close", **kw.pop("headers", {})}
    return requests.get(url, headers=headers, timeout=30, **kw)


def _status(resp: requests.Response) -> Seen | None:
    if resp.status_code == 410:
        return Seen(GONE)
    if resp.status_code == 404:
        return Seen(ABSENT)
    if resp.status_code not in (200, 304):
        raise UnexpectedAnswer(f"HTTP {resp.status_code}: {resp.text[:300]}")
    return None


def _meta_version(resource: dict[str, Any]) -> Seen:
    return Seen(int(resource["meta"]["versionId"]))


def _title_version(expansion: dict[str, Any]) -> Seen:
    m = _TITLE.match(str(expansion.get("title", "")))
    if m is None:
        raise UnexpectedAnswer(f"an expansion without a revision title: {str(expansion)[:300]}")
    return Seen(int(m.group(1)))


def read_json(base: str, rid: str, url: str, token: str | None = None) -> Seen:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = _get(f"{base}/ValueSet/{rid}", headers=headers)
    return _status(resp) or _meta_version(resp.json())


def read_token(base: str, rid: str, url: str, token: str | None = None) -> Seen:
    return read_json(base, rid, url, token)


def read_xml(base: str, rid: str, url: str, token: str | None = None) -> Seen:
    resp = _get(f"{base}/ValueSet/{rid}", params={"_format": "xml"})
    found = _status(resp)
    if found is not None:
        return found
    m = _XML_VERSION.search(resp.content)
    if m is None:
        raise UnexpectedAnswer(f"XML read without a versionId: {resp.text[:300]}")
    return Seen(int(m.group(1)))


def revalidate(base: str, rid: str, url: str, token: str | None = None) -> Seen:
    """A conditional GET naming version 1: 304 says the answer would still be version 1."""
    resp = _get(f"{base}/ValueSet/{rid}", headers={"If-None-Match": 'W/"1"'})
    found = _status(resp)
    if found is not None:
        return found
    return Seen(1) if resp.status_code == 304 else _meta_version(resp.json())


def search(base: str, rid: str, url: str, token: str | None = None) -> Seen:
    resp = _get(f"{base}/ValueSet", params={"url": url})
    found = _status(resp)
    if found is not None:
        return found
    entries = resp.json().get("entry", [])
    return _meta_version(entries[0]["resource"]) if entries else Seen(ABSENT)


def expand_dispatch(base: str, rid: str, url: str, token: str | None = None) -> Seen:
    """A type-level $expand GET: answered by the thin dispatch (and the response cache)."""
    resp = _get(f"{base}/ValueSet/$expand", params={"url": url})
    return _status(resp) or _title_version(resp.json())


def expand_flask(base: str, rid: str, url: str, token: str | None = None) -> Seen:
    """An instance-level $expand GET: answered by the Flask route."""
    resp = _get(f"{base}/ValueSet/{rid}/$expand")
    return _status(resp) or _title_version(resp.json())


def expand_xml(base: str, rid: str, url: str, token: str | None = None) -> Seen:
    resp = _get(f"{base}/ValueSet/$expand", params={"url": url, "_format": "xml"})
    found = _status(resp)
    if found is not None:
        return found
    m = re.search(rb'<title value="rev (\d+)"', resp.content)
    if m is None:
        raise UnexpectedAnswer(f"XML expansion without a revision title: {resp.text[:300]}")
    return Seen(int(m.group(1)))


def validate_code(base: str, rid: str, url: str, token: str | None = None) -> Seen:
    resp = _get(f"{base}/ValueSet/$validate-code",
                params={"url": url, "system": BODY_SITE, "code": "spine"})
    found = _status(resp)
    if found is not None:
        return found
    params = {p["name"]: p for p in resp.json().get("parameter", [])}
    if "result" not in params:
        raise UnexpectedAnswer(f"$validate-code without a result: {resp.text[:300]}")
    # an unknown value set is result=false with a not-found issue, not a parity
    if not params["result"]["valueBoolean"] and "Unable to find" in resp.text:
        return Seen(ABSENT)
    return Seen(0, parity=1 if params["result"]["valueBoolean"] else 0)


def batch_entry(base: str, rid: str, url: str, token: str | None = None) -> Seen:
    bundle = {"resourceType": "Bundle", "type": "batch",
              "entry": [{"request": {"method": "GET", "url": f"ValueSet/{rid}"}}]}
    resp = requests.post(base, data=orjson.dumps(bundle), timeout=30,
                         headers={"Content-Type": FHIR, "Connection": "close"})
    if resp.status_code != 200:
        raise UnexpectedAnswer(f"batch HTTP {resp.status_code}: {resp.text[:300]}")
    entry = resp.json()["entry"][0]
    status = entry["response"]["status"].split()[0]
    if status == "410":
        return Seen(GONE)
    if status == "404":
        return Seen(ABSENT)
    return _meta_version(entry["resource"])


ReadPath = Callable[[str, str, str, str | None], Seen]
READ_PATHS: dict[str, ReadPath] = {
    "read": read_json, "read-with-token": read_token, "read-xml": read_xml,
    "revalidate-304": revalidate, "search": search, "expand-dispatch": expand_dispatch,
    "expand-flask": expand_flask, "expand-xml": expand_xml, "validate-code": validate_code,
    "batch-entry": batch_entry,
}


# -- histories ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """One operation as a client saw it: when it started and ended, and what it did or saw."""

    kind: str  # "write", "delete" or "read:<path>"
    client: str
    server: str  # which instance or replica answered
    rid: str
    start: float
    end: float
    version: int  # the version written (GONE for a delete), or the Seen's version
    seen: Seen | None = None  # for reads

    def __str__(self) -> str:
        what = str(self.seen) if self.seen is not None else (
            "delete" if self.version == GONE else f"version {self.version}")
        return (f"[{self.start:9.4f} .. {self.end:9.4f}] {self.client:>10} on {self.server} "
                f"{self.kind:<26} {self.rid[:8]} -> {what}")


@dataclass
class History:
    """Every operation of a run, appended from many threads."""

    ops: list[Op] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    t0: float = field(default_factory=time.monotonic)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def add(self, op: Op) -> None:
        with self.lock:
            self.ops.append(op)


BY_URL = ("read:search", "read:expand-dispatch", "read:expand-xml", "read:validate-code")


def _floor(writes: list[Op], read: Op, lag: float) -> Op | None:
    """The newest write acknowledged before the read began: on the read's own server at
    once, on another replica `lag` seconds later (writes of one resource are serialized)."""
    done = [w for w in writes if (w.end < read.start if w.server == read.server else w.end < read.start - lag)]
    return max(done, key=lambda w: (w.version == GONE, w.version, w.end)) if done else None


def _possible(writes: list[Op], floor: Op | None, read: Op) -> list[int]:
    """The versions a read may answer: the floor's, or any written before the read ended."""
    if floor is not None and floor.version == GONE:
        return [GONE]
    low = floor.version if floor is not None else 0
    out = [w.version for w in writes if w.start < read.end and (w.version >= low or w.version == GONE)]
    if floor is None:
        out.append(ABSENT)
    return out


def _seen(op: Op, writes: list[Op]) -> Seen:
    """What a read saw; by url, a resource that is not found once a delete has begun is the
    deleted one (by url there is no 410 to tell)."""
    assert op.seen is not None
    if op.kind in BY_URL and op.seen.version == ABSENT and any(
            w.version == GONE and w.start < op.end for w in writes):
        return Seen(GONE)
    return op.seen


def check(history: History, lag: float = 0.0) -> list[str]:
    """Every violation of read-your-writes in `history`, each shown by its shortest history.

    lag: how long a write on one replica may take to reach the others (0: one instance).
    """
    problems: list[str] = []
    by_rid: dict[str, list[Op]] = {}
    for op in history.ops:
        by_rid.setdefault(op.rid, []).append(op)
    for ops in by_rid.values():
        writes = [o for o in ops if o.seen is None]
        reads = sorted((o for o in ops if o.seen is not None), key=lambda o: o.start)
        last_by_reader: dict[str, tuple[Op, Seen]] = {}
        for r in reads:
            seen = _seen(r, writes)
            floor = _floor(writes, r, lag)
            if not any(seen.could_be(v) for v in _possible(writes, floor, r)):
                shown = "\n    ".join(str(o) for o in ([floor] if floor else []) + [r])
                problems.append(f"stale read (acknowledged before the read began, then read):\n    {shown}")
                continue
            if seen.parity is not None:
                continue
            prev = last_by_reader.get(r.client)
            if prev is not None:
                before, now = prev[1].version, seen.version
                if (before == GONE and now != GONE) or (before > 0 and (now == ABSENT or 0 < now < before)):
                    problems.append(f"went backwards for one reader:\n    {prev[0]}\n    {r}")
            last_by_reader[r.client] = (r, seen)
    return problems


class Noise:
    """Another instance writing to its own store for as long as a test runs (bounded)."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": FHIR}
        self.stop = threading.Event()
        self.writes = 0
        url = f"http://example.test/fhir/ValueSet/noise-{uuid.uuid4().hex[:8]}"
        created = requests.post(f"{base}/ValueSet", data=orjson.dumps(revision(url, 1)),
                                headers=self.headers, timeout=30)
        assert created.status_code == 201, created.text
        self.vs = created.json()
        for n in range(2, 40):  # its change numbers run well ahead of the other store's
            self.write(n)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def write(self, n: int) -> None:
        vs = revision(self.vs["url"], n, self.vs["id"])
        resp = requests.put(f"{self.base}/ValueSet/{vs['id']}", data=orjson.dumps(vs),
                            headers=self.headers, timeout=30)
        assert resp.status_code == 200, resp.text
        self.writes += 1

    def run(self) -> None:
        n = 40
        while not self.stop.is_set() and n < 5000:
            self.write(n)
            n += 1
            self.stop.wait(0.05)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
