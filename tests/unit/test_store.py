"""The store (SQLite): versions, If-Match, url|version uniqueness, the change feed."""

from __future__ import annotations

from pathlib import Path

import pytest

from terminology.content import apply_stored, load_registry
from terminology.settings import BUNDLED_CONTENT
from terminology.store import UniqueCanonical, VersionConflict, store_url
from terminology.store.feed import Bell, ChangeFeed, bell_path
from terminology.store.store import Store, StoredVersion


def vs(url: str, title: str = "t", version: str = "1") -> dict[str, object]:
    return {"resourceType": "ValueSet", "url": url, "version": version, "status": "draft", "title": title}


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    s = Store(store_url("", tmp_path))
    assert s.migrate() == 2
    assert s.migrate() == 2  # a second start migrates nothing
    return s


def test_every_write_is_a_new_version_and_if_match_must_name_the_current(store: Store) -> None:
    first, created = store.put("ValueSet", "a", vs("http://x/a"), must_not_exist=True)
    assert created and first.version_id == 1 and first.resource and first.resource["meta"]["versionId"] == "1"
    second, created = store.put("ValueSet", "a", vs("http://x/a", "two"), if_match=1)
    assert not created and second.version_id == 2
    with pytest.raises(VersionConflict) as e:
        store.put("ValueSet", "a", vs("http://x/a", "lost"), if_match=1)
    assert e.value.current == 2
    assert [v.version_id for v in store.history("ValueSet", "a")] == [2, 1]
    assert store.count_versions() == 2  # the refused write left nothing


def test_url_and_version_are_unique_among_live_resources(store: Store) -> None:
    store.put("ValueSet", "a", vs("http://x/same"))
    with pytest.raises(UniqueCanonical):
        store.put("ValueSet", "b", vs("http://x/same"))
    store.delete("ValueSet", "a")
    store.put("ValueSet", "b", vs("http://x/same"))  # free again once deleted


def test_the_feed_applies_only_what_changed_after_its_number(store: Store, tmp_path: Path) -> None:
    applied: list[StoredVersion] = []
    feed = ChangeFeed(store, store.change_number(), applied.extend, Bell(tmp_path / "bell"), poll_ms=60_000)
    feed.check()
    assert applied == []
    v, _ = store.put("ValueSet", "a", vs("http://x/a"))
    feed.check()  # nobody rang and no poll is due: nothing yet
    assert applied == []
    other = ChangeFeed(store, 0, lambda _: None, Bell(tmp_path / "bell"), poll_ms=60_000)
    other.published(v.seq)  # a writer rings the shared bell
    feed.check()
    assert [(x.id, x.version_id) for x in applied] == [("a", 1)]


def test_two_stores_in_one_data_directory_have_two_bells_and_one_store_has_one(tmp_path: Path) -> None:
    a, b = Store(f"sqlite:///{tmp_path / 'a.db'}"), Store(f"sqlite:///{tmp_path / 'b.db'}")
    a.migrate()
    b.migrate()
    shared = tmp_path / "data"
    assert bell_path(shared, a) != bell_path(shared, b)
    assert a.identity() != b.identity()
    again = Store(f"sqlite:///{tmp_path / 'x' / '..' / 'a.db'}")  # the same file, another spelling
    assert bell_path(shared, again) == bell_path(shared, a)


def test_a_ring_is_never_hidden_by_another_store_ringing_the_same_bell(tmp_path: Path) -> None:
    a, b = Store(f"sqlite:///{tmp_path / 'a.db'}"), Store(f"sqlite:///{tmp_path / 'b.db'}")
    a.migrate()
    b.migrate()
    for n in range(5):  # b's change numbers run ahead of a's
        b.put("ValueSet", f"b{n}", vs(f"http://x/b{n}"))
    bell = tmp_path / "one-bell"  # as if both stores shared one (a copied database)
    applied: list[StoredVersion] = []
    reader = ChangeFeed(a, 0, applied.extend, Bell(bell), poll_ms=60_000)
    writer_b = ChangeFeed(b, b.change_number(), lambda _: None, Bell(bell), poll_ms=60_000)
    writer_a = ChangeFeed(a, 0, lambda _: None, Bell(bell), poll_ms=60_000)
    v, _ = b.put("ValueSet", "b9", vs("http://x/b9"))
    writer_b.published(v.seq)
    reader.check()
    v, _ = a.put("ValueSet", "a1", vs("http://x/a1"))
    writer_a.published(v.seq)  # a's number (1) is below b's (6): the bell still moves
    reader.check()
    assert [(x.id, x.version_id) for x in applied] == [("a1", 1)]


def test_a_stored_resource_replaces_only_its_own_previous_version(tmp_path: Path) -> None:
    registry = load_registry([BUNDLED_CONTENT])
    before = len(registry.resources("ValueSet"))
    apply_stored(registry, "ValueSet", "a", {**vs("http://x/a"), "id": "a"})
    apply_stored(registry, "ValueSet", "a", {**vs("http://x/a", "two", "2"), "id": "a"})
    assert len(registry.resources("ValueSet")) == before + 1
    assert registry.value_set("http://x/a")["title"] == "two"  # type: ignore[index]
    assert registry.value_set("http://x/a", "1") is None
    apply_stored(registry, "ValueSet", "a", None)
    assert registry.value_set("http://x/a") is None and len(registry.resources("ValueSet")) == before
