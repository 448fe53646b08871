"""Content loading: validation at start-up, all or nothing, versions side by side, the memo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from terminology import content
from terminology.content import ContentError, load_registry

from ..conftest import BODY_SITE, load_json


def write(folder: Path, name: str, resource: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(resource))
    return path


def body_site(**changes: Any) -> dict[str, Any]:
    cs = load_json("codesystem-body-site.json")
    cs.update(changes)
    return cs


def test_load_indexes_hierarchy_and_properties(tmp_path: Path) -> None:
    write(tmp_path, "cs.json", body_site())
    registry = load_registry([tmp_path])
    provider = registry.code_system(BODY_SITE)
    assert provider is not None
    assert provider.total() == 7
    spine = provider.locate("spine")
    assert spine is not None and spine.abstract and spine.children == ["c-spine", "t-spine", "l-spine"]
    retired = provider.locate("old-joint")
    assert retired is not None and retired.inactive and retired.status == "retired"
    assert provider.subsumes("spine", "l-spine") and not provider.subsumes("limb", "l-spine")


def test_bad_status_stops_load_naming_file_and_path(tmp_path: Path) -> None:
    path = write(tmp_path, "cs.json", body_site(status="live"))
    with pytest.raises(ContentError) as e:
        load_registry([tmp_path])
    assert e.value.source == str(path)
    assert e.value.path == "CodeSystem.status"
    assert "'live' is not a publication-status code" in str(e.value)


def test_bad_content_code_is_rejected(tmp_path: Path) -> None:
    write(tmp_path, "cs.json", body_site(content="partial"))
    with pytest.raises(ContentError, match="CodeSystem.content"):
        load_registry([tmp_path])


def test_duplicate_code_is_rejected_with_its_path(tmp_path: Path) -> None:
    cs = body_site()
    cs["concept"].append({"code": "knee", "display": "Knee again"})
    write(tmp_path, "cs.json", cs)
    with pytest.raises(ContentError) as e:
        load_registry([tmp_path])
    assert e.value.path == "CodeSystem.concept[2].code"
    assert "duplicate code 'knee'" in e.value.problem


def test_parent_that_does_not_exist_is_rejected(tmp_path: Path) -> None:
    cs = body_site()
    cs["concept"].append({"code": "hip", "property": [{"code": "parent", "valueCode": "pelvis"}]})
    write(tmp_path, "cs.json", cs)
    with pytest.raises(ContentError, match="parent 'pelvis' is not a code"):
        load_registry([tmp_path])


def test_model_error_names_element_path(tmp_path: Path) -> None:
    cs = body_site()
    cs["concept"][0]["property"][0]["valueBoolen"] = True
    write(tmp_path, "cs.json", cs)
    with pytest.raises(ContentError) as e:
        load_registry([tmp_path])
    assert e.value.path.startswith("CodeSystem.concept.0.property.0")


def test_invalid_json_names_the_file(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ContentError, match="broken.json: \\(file\\): not valid JSON"):
        load_registry([tmp_path])


def test_nothing_is_half_loaded_when_one_file_is_bad(tmp_path: Path) -> None:
    write(tmp_path, "a-good.json", body_site())
    write(tmp_path, "b-bad.json", body_site(url="http://example.test/other", status="nope"))
    with pytest.raises(ContentError):
        load_registry([tmp_path])


def test_two_versions_of_one_url_coexist_and_newest_is_default(tmp_path: Path) -> None:
    write(tmp_path, "v1.json", body_site())
    write(tmp_path, "v2.json", body_site(version="1.10.0", id="test-body-site-2"))
    registry = load_registry([tmp_path])
    assert registry.code_system_versions(BODY_SITE) == ["1.0.0", "1.10.0"]
    default = registry.code_system(BODY_SITE)
    assert default is not None and default.version == "1.10.0"
    old = registry.code_system(BODY_SITE, "1.0.0")
    assert old is not None and old.version == "1.0.0"


def test_same_url_and_version_twice_is_rejected(tmp_path: Path) -> None:
    write(tmp_path, "a.json", body_site())
    write(tmp_path, "b.json", body_site(id="another-id"))
    with pytest.raises(ContentError, match="also defined in"):
        load_registry([tmp_path])


def test_bundle_entries_are_loaded(tmp_path: Path) -> None:
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": body_site()}, {"resource": {
                  "resourceType": "ValueSet", "id": "vs", "url": "http://example.test/vs",
                  "status": "active", "compose": {"include": [{"system": BODY_SITE}]}}}]}
    write(tmp_path, "bundle.json", bundle)
    registry = load_registry([tmp_path])
    assert registry.code_system(BODY_SITE) is not None
    assert registry.value_set("http://example.test/vs") is not None


def test_memo_skips_model_validation_for_unchanged_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "content"
    write(folder, "cs.json", body_site())
    memo = tmp_path / "memo.txt"
    load_registry([folder], memo)
    assert memo.read_text().strip()

    def fail(_resource: dict[str, Any], _lenient: bool = False) -> list[tuple[str, str]]:
        raise AssertionError("model validation ran again for unchanged content")

    monkeypatch.setattr(content, "_model_errors", fail)
    assert load_registry([folder], memo).code_system(BODY_SITE) is not None
    write(folder, "cs.json", body_site(title="changed"))
    with pytest.raises(AssertionError, match="ran again"):
        load_registry([folder], memo)


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ContentError, match="does not exist"):
        load_registry([tmp_path / "nope"])


def test_unknown_cpt_rule_set_stops_the_load_naming_the_setting(tmp_path: Path) -> None:
    from terminology.content import load_content
    from terminology.settings import Settings

    with pytest.raises(ContentError, match="cpt_rules .*'cms' is not one of cpt, tx.fhir.org"):
        load_content(Settings(content_dirs=[tmp_path], cpt_rules="cms"))


def test_cpt_rules_setting_is_read_from_tx_cpt_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    from terminology.settings import Settings

    monkeypatch.setenv("TX_CPT_RULES", "tx.fhir.org")
    assert Settings.from_env().cpt_rules == "tx.fhir.org"
    assert Settings().cpt_rules == "cpt"
