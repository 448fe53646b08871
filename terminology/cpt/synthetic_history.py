"""Successive synthetic CPT releases with known additions, deletions and revisions.

The first release is `terminology.cpt.synthetic`'s; each later one deletes, adds and revises
about 1 % of the codes, as the AMA's yearly updates do (0.4 % deleted, 0.4 % added, 0.3 %
revised). Anchor codes (72126, 99202, ...) never change. Deleted code numbers are never
reused. Half of the added codes are CT or MR codes, so rule-based imaging order sets pick
new codes up; revisions change non-radiology descriptors only, so the imaging facets
derived from descriptors stay put. Every change is listed in `changes.json`:

    {"releases": ["2017", ..., "2026"],
     "changes": [{"from": "2017", "to": "2018",
                  "added":   [{"code": ..., "display": ...}],
                  "deleted": [{"code": ..., "display": <its last descriptor>}],
                  "revised": [{"code": ..., "display": <new>, "previous": <old>}]}, ...]}

where a display is the long descriptor (the CodeSystem display the importer gives a code).

    python -m terminology.cpt.synthetic_history DEST --releases 2017..2026 [--databases]
                                                [--codes N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from terminology.cpt import synthetic
from terminology.cpt.synthetic import SyntheticCode

DELETED_SHARE = 0.004
ADDED_SHARE = 0.004
REVISED_SHARE = 0.003
CHANGES_FILE = "changes.json"


@dataclass
class ReleaseChanges:
    """What one release changes against the one before it."""

    previous: str
    version: str
    added: list[SyntheticCode] = field(default_factory=list)
    deleted: list[SyntheticCode] = field(default_factory=list)
    revised: list[tuple[SyntheticCode, SyntheticCode]] = field(default_factory=list)  # (old, new)

    def as_json(self) -> dict[str, Any]:
        """The changes.json entry for this release."""
        return {
            "from": self.previous, "to": self.version,
            "added": [{"code": c.code, "display": c.long} for c in self.added],
            "deleted": [{"code": c.code, "display": c.long} for c in self.deleted],
            "revised": [{"code": new.code, "display": new.long, "previous": old.long}
                        for old, new in self.revised],
        }


def parse_range(text: str) -> list[str]:
    """'2017..2026' -> ['2017', ..., '2026']; a ValueError for anything else."""
    first, sep, last = text.partition("..")
    if not sep or not first.isdigit() or not last.isdigit() or int(first) > int(last):
        raise ValueError(f"releases must be FIRST..LAST years (e.g. 2017..2026), not {text!r}")
    return [str(y) for y in range(int(first), int(last) + 1)]


def _anchors() -> set[str]:
    return {a[0] for a in synthetic._RADIOLOGY_ANCHORS} | set(synthetic._OTHER_ANCHORS)


def _is_radiology(code: str) -> bool:
    return code.isdigit() and 70010 <= int(code) < 80000


def _new_code(code: str, version: str, rng: random.Random) -> SyntheticCode:
    """A code first published in `version`: CT/MR for radiology numbers, else the grammar's."""
    if not _is_radiology(code):
        return synthetic._other(code, rng)
    region = f"{rng.choice(list(synthetic._REGIONS))}, synthetic study {version}-{code}"
    return synthetic._radiology(code, rng.choice(("CT", "MR")), region,
                                rng.choice(list(synthetic._CONTRASTS)))


def _revise(code: SyntheticCode, version: str) -> SyntheticCode:
    """The code with a long descriptor revised in `version` (medium and short kept)."""
    stem = code.long.split(" (revised in ")[0]
    return replace(code, long=f"{stem} (revised in {version})")


def next_release(codes: dict[str, SyntheticCode], used: set[str], previous: str,
                 version: str, seed: int) -> ReleaseChanges:
    """Change `codes` in place into release `version`; `used` holds every number ever used."""
    rng = random.Random(f"{seed}:release:{version}")
    n = len(codes)
    changes = ReleaseChanges(previous, version)
    fixed = _anchors()
    candidates = sorted(c for c in codes if c not in fixed and c[:-1].isdigit())
    for code in rng.sample(candidates, max(2, round(n * DELETED_SHARE))):
        changes.deleted.append(codes.pop(code))
    revisable = sorted(c for c in codes if c not in fixed and c.isdigit() and not _is_radiology(c))
    for code in rng.sample(revisable, max(2, round(n * REVISED_SHARE))):
        new = _revise(codes[code], version)
        changes.revised.append((codes[code], new))
        codes[code] = new
    wanted = max(2, round(n * ADDED_SHARE))
    pools = (range(70010, 80000), [*range(100, 70000), *range(80000, 99500)])
    for pool, k in zip(pools, (wanted // 2, wanted - wanted // 2), strict=True):
        free = [f"{i:05d}" for i in pool if f"{i:05d}" not in used]
        for code in sorted(rng.sample(free, k)):
            used.add(code)
            codes[code] = _new_code(code, version, synthetic.code_rng(seed, f"{version}:{code}"))
            changes.added.append(codes[code])
    changes.added.sort(key=lambda c: c.code)
    changes.deleted.sort(key=lambda c: c.code)
    changes.revised.sort(key=lambda p: p[1].code)
    return changes


def write_release_history(dest: Path, versions: list[str], n_codes: int = 11000,
                          seed: int = 0, databases: bool = False) -> list[ReleaseChanges]:
    """Write one release folder per version (DEST/2017, ...) and DEST/changes.json; with
    `databases`, also import each into DEST/cpt-<version>.db."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    codes = {c.code: c for c in synthetic.synthetic_codes(n_codes, seed)}
    used = set(codes)
    history: list[ReleaseChanges] = []
    for i, version in enumerate(versions):
        if i:
            history.append(next_release(codes, used, versions[i - 1], version, seed))
        ordered = [codes[c] for c in sorted(codes)]
        synthetic.write_release_files(dest / version, ordered, seed)
        if databases:
            from terminology.cpt.ama.importer import import_to_db
            import_to_db(dest / version, version, dest / f"cpt-{version}.db")
    changes = {"releases": versions, "changes": [c.as_json() for c in history]}
    (dest / CHANGES_FILE).write_text(json.dumps(changes, indent=1, ensure_ascii=False))
    return history


def read_changes(dest: Path) -> dict[str, Any]:
    """The changes.json a history run wrote into dest."""
    loaded: dict[str, Any] = json.loads((Path(dest) / CHANGES_FILE).read_text())
    return loaded


def main(argv: list[str] | None = None) -> int:
    """`python -m terminology.cpt.synthetic_history DEST --releases FIRST..LAST [--databases]`."""
    parser = argparse.ArgumentParser(description="Write successive synthetic CPT releases.")
    parser.add_argument("dest", type=Path, help="folder: one sub-folder per release")
    parser.add_argument("--releases", required=True, help="FIRST..LAST, e.g. 2017..2026")
    parser.add_argument("--codes", type=int, default=11000, help="codes in the first (11000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--databases", action="store_true",
                        help="also import each release into DEST/cpt-<version>.db")
    args = parser.parse_args(argv)
    try:
        versions = parse_range(args.releases)
    except ValueError as e:
        parser.error(str(e))
    write_release_history(args.dest, versions, args.codes, args.seed, args.databases)
    print(f"wrote {len(versions)} synthetic CPT releases ({versions[0]}..{versions[-1]}) "
          f"and {CHANGES_FILE} to {args.dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
