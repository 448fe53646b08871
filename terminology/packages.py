"""FHIR packages (NPM-style, as published by HL7 and IG Publisher) as a source of content.

A package is a `.tgz` whose `package/` folder holds `package.json` (name, version) and one
JSON file per resource, or the same folder extracted on disk. Only the files directly in
`package/` are the package's resources (examples and `other/` are not, per the FHIR
package specification). When `package/.index.json` is present its list of files and their
resource types is trusted, so files of other types are never even read; without it every
`package/*.json` is read and resources of other types are skipped. The tarball is read in
memory and never extracted, so a member's path cannot escape anywhere.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

PACKAGE_DIR = "package"
MANIFEST = "package.json"
INDEX = ".index.json"


class PackageError(Exception):
    """A package that cannot be read: names the package, the file and the problem."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source, self.problem = source, problem


def _json(raw: bytes, source: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise PackageError(source, f"not valid JSON: {e}") from e


def _from_files(label: str, names: list[str], read: Callable[[str], bytes | None],
                wanted: tuple[str, ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(source, resource) for each resource of a `wanted` type among `names` (top-level files)."""
    index_raw = read(INDEX)
    if index_raw is not None:
        index = _json(index_raw, f"{label}/{INDEX}")
        entries = index.get("files") if isinstance(index, dict) else None
        if not isinstance(entries, list):
            raise PackageError(f"{label}/{INDEX}", "has no 'files' list")
        names = [e["filename"] for e in entries
                 if isinstance(e, dict) and e.get("resourceType") in wanted
                 and isinstance(e.get("filename"), str)]
    for name in sorted(names):
        if name in (MANIFEST, INDEX) or not name.endswith(".json") or "/" in name:
            continue
        raw = read(name)
        if raw is None:
            raise PackageError(f"{label}/{name}", f"listed in {INDEX} but not in the package")
        resource = _json(raw, f"{label}/{name}")
        if isinstance(resource, dict) and resource.get("resourceType") in wanted:
            yield f"{label}/{name}", resource


def _label(manifest: Any, path: Path) -> str:
    if isinstance(manifest, dict) and manifest.get("name"):
        return f"{path} ({manifest['name']}#{manifest.get('version', '?')})"
    return str(path)


def package_resources(path: Path, wanted: tuple[str, ...]) -> list[tuple[str, dict[str, Any]]]:
    """The resources of the `wanted` types in the package at `path` (.tgz or folder)."""
    if path.is_dir():
        folder = path / PACKAGE_DIR if (path / PACKAGE_DIR / MANIFEST).is_file() else path
        if not (folder / MANIFEST).is_file():
            raise PackageError(str(path), f"no {MANIFEST} (not a FHIR package folder)")

        def read_file(name: str) -> bytes | None:
            p = folder / name
            return p.read_bytes() if p.is_file() else None

        label = _label(_json(folder.joinpath(MANIFEST).read_bytes(), str(folder / MANIFEST)), path)
        names = [p.name for p in folder.iterdir() if p.is_file()]
        return list(_from_files(label, names, read_file, wanted))
    if not path.is_file():
        raise PackageError(str(path), "does not exist")
    try:
        with tarfile.open(path, "r:*") as tar:
            members = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}

            def read_member(name: str) -> bytes | None:
                member = members.get(f"{PACKAGE_DIR}/{name}")
                stream = tar.extractfile(member) if member is not None else None
                return stream.read() if stream is not None else None

            manifest = read_member(MANIFEST)
            if manifest is None:
                raise PackageError(str(path), f"no {PACKAGE_DIR}/{MANIFEST} (not a FHIR package)")
            label = _label(_json(manifest, f"{path}/{MANIFEST}"), path)
            prefix = PACKAGE_DIR + "/"
            names = [n.removeprefix(prefix) for n in members if n.startswith(prefix)]
            return list(_from_files(label, names, read_member, wanted))
    except (tarfile.TarError, EOFError, OSError) as e:
        raise PackageError(str(path), f"not a readable .tgz: {e}") from e
