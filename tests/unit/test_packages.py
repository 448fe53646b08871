"""FHIR packages and content folders: terminology resources load, other types are skipped."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from terminology.content import ContentError, load_content, load_registry
from terminology.operations.lookup import lookup
from terminology.params import LookupRequest
from terminology.settings import Settings

from ..conftest import BODY_SITE, CPT_URL, load_json

VS_URL = "http://example.test/fhir/ValueSet/from-package"
MAP_URL = "http://example.test/fhir/ConceptMap/from-package"
STRUCTURE = {"resourceType": "StructureDefinition", "id": "sd", "url": "http://example.test/sd",
             "name": "Sd", "status": "active", "kind": "resource", "abstract": False,
             "type": "Patient"}


def package_files() -> dict[str, Any]:
    """The files of a small package: a CodeSystem, a ValueSet, a ConceptMap and more."""
    return {
        "package.json": {"name": "example.test.terminology", "version": "0.1.0",
                         "fhirVersions": ["4.0.1"]},
        "CodeSystem-body-site.json": load_json("codesystem-body-site.json"),
        "ValueSet-from-package.json": {
            "resourceType": "ValueSet", "id": "from-package", "url": VS_URL, "status": "active",
            "compose": {"include": [{"system": BODY_SITE}]}},
        "ConceptMap-from-package.json": {
            "resourceType": "ConceptMap", "id": "from-package", "url": MAP_URL,
            "status": "active", "group": [{"source": BODY_SITE, "target": BODY_SITE,
                                           "element": [{"code": "spine", "target": [
                                               {"code": "spine", "equivalence": "equal"}]}]}]},
        "StructureDefinition-sd.json": STRUCTURE,
        "Patient-example.json": {"resourceType": "Patient", "id": "example"},
    }


def write_folder(root: Path, files: dict[str, Any]) -> Path:
    """An extracted package: root/package/<files>."""
    folder = root / "package"
    folder.mkdir(parents=True)
    for name, body in files.items():
        (folder / name).write_text(body if isinstance(body, str) else json.dumps(body))
    return root


def write_tgz(path: Path, files: dict[str, Any]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, body in files.items():
            raw = (body if isinstance(body, str) else json.dumps(body)).encode()
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path


def assert_terminology_loaded(registry: Any) -> None:
    assert registry.code_system(BODY_SITE) is not None
    assert registry.value_set(VS_URL) is not None
    assert registry.concept_map(MAP_URL) is not None


def test_package_folder_loads_terminology_and_ignores_a_structure_definition(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "pkg", package_files())
    assert_terminology_loaded(load_registry([], packages=[root]))
    # The package/ folder itself names the package too.
    assert_terminology_loaded(load_registry([], packages=[root / "package"]))


def test_package_tgz_loads_terminology_and_ignores_a_structure_definition(tmp_path: Path) -> None:
    tgz = write_tgz(tmp_path / "example.tgz", package_files())
    registry = load_registry([], packages=[tgz])
    assert_terminology_loaded(registry)
    assert [r["resourceType"] for r in registry.resources("ValueSet")] == ["ValueSet"]


def test_package_index_is_honoured_so_other_files_are_never_read(tmp_path: Path) -> None:
    files = package_files()
    files["StructureDefinition-sd.json"] = "{ not json: never read because the index says SD"
    files["ValueSet-unlisted.json"] = {"resourceType": "ValueSet", "id": "u", "status": "active",
                                       "url": "http://example.test/unlisted"}
    files[".index.json"] = {"index-version": 1, "files": [
        {"filename": name, "resourceType": body["resourceType"]}
        for name, body in package_files().items() if name != "package.json"]}
    registry = load_registry([], packages=[write_tgz(tmp_path / "p.tgz", files)])
    assert_terminology_loaded(registry)
    assert registry.value_set("http://example.test/unlisted") is None


def test_examples_folder_of_a_package_is_not_content(tmp_path: Path) -> None:
    files = package_files()
    files["examples/ValueSet-example.json"] = {"resourceType": "ValueSet", "id": "e",
                                               "status": "bogus", "url": "http://example.test/e"}
    registry = load_registry([], packages=[write_tgz(tmp_path / "p.tgz", files)])
    assert registry.value_set("http://example.test/e") is None


def test_a_content_folder_skips_other_resource_types(tmp_path: Path) -> None:
    (tmp_path / "sd.json").write_text(json.dumps(STRUCTURE))
    (tmp_path / "bundle.json").write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
        "entry": [{"resource": STRUCTURE}, {"resource": package_files()["ValueSet-from-package.json"]}]}))
    (tmp_path / "cs.json").write_text(json.dumps(load_json("codesystem-body-site.json")))
    registry = load_registry([tmp_path])
    assert registry.value_set(VS_URL) is not None


def test_a_file_without_resource_type_still_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"url": "http://example.test/x"}')
    with pytest.raises(ContentError, match=r"x\.json: resourceType: missing"):
        load_registry([tmp_path])


def test_an_invalid_terminology_resource_in_a_package_names_the_package_file(tmp_path: Path) -> None:
    files = package_files()
    files["ValueSet-from-package.json"]["status"] = "bogus"
    with pytest.raises(ContentError, match=r"example\.test\.terminology#0\.1\.0\)/ValueSet-from-package"):
        load_registry([], packages=[write_tgz(tmp_path / "p.tgz", files)])


@pytest.mark.parametrize("make", ["missing", "not-a-package", "not-gzip"])
def test_unreadable_packages_are_content_errors(tmp_path: Path, make: str) -> None:
    path = tmp_path / "p.tgz"
    if make == "not-a-package":
        write_tgz(path, {"other.json": {}})
    elif make == "not-gzip":
        path.write_bytes(b"plain text")
    with pytest.raises(ContentError, match="p.tgz"):
        load_registry([], packages=[path])


def test_cpt_copyright_notice_is_a_setting(tmp_path: Path) -> None:
    settings = Settings(cpt_copyright="Licensed to Example Hospital", cache_dir=tmp_path)
    registry = load_content(settings)
    answer = lookup(registry, LookupRequest(system=CPT_URL, code="72126"))
    notices = [p for p in answer["parameter"] if p["name"] == "property"
               and {"name": "code", "valueCode": "copyright"} in p["part"]]
    assert notices and notices[0]["part"][1]["valueString"] == "Licensed to Example Hospital"


def test_a_cpt_database_folder_means_every_database_in_it(tmp_path: Path) -> None:
    from terminology.content import cpt_database_files

    empty = tmp_path / "cpt"
    empty.mkdir()
    assert cpt_database_files([empty]) == []
    (empty / "b.db").write_bytes(b"")
    (empty / "a.db").write_bytes(b"")
    (empty / "README.md").write_text("not a database")
    assert cpt_database_files([empty]) == [empty / "a.db", empty / "b.db"]
    with pytest.raises(ContentError, match="CPT database does not exist"):
        cpt_database_files([tmp_path / "missing.db"])
