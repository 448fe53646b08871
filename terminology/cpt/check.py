"""`terminology check --cpt DB`: a CPT database checked as the server would load it, without
serving it.

Checked: the schema (tx.fhir.org's four tables and the version row, terminology.cpt.release),
that every concept has a display and a form CPT allows (terminology.cpt.rules), the counts
(as the import report gives them), and a sample of lookups through the provider the server
would build. A problem raises CptDataError naming the database and what is wrong.
"""

from __future__ import annotations

import os
from pathlib import Path

from terminology.cpt.import_report import ImportReport
from terminology.cpt.provider import CptProvider, database_resource
from terminology.cpt.release import CptDataError, CptRelease, read_cpt_db
from terminology.cpt.rules import CODE_FORM, MODIFIER_FORM

SAMPLE_SIZE = 50  # codes and modifiers looked up, spread over the release


def check_cpt_database(path: str | os.PathLike[str]) -> list[str]:
    """The summary of a sound CPT database (the lines `check` prints); CptDataError else."""
    p = Path(path)
    release = read_cpt_db(p)
    if not release.concepts:
        raise CptDataError(f"{p}: no concepts in table Concepts")
    _check_concepts(p, release)
    looked_up = _check_lookups(p, release)
    first, *rest = ImportReport(release, modul_read=True).lines()
    rest = [line for line in rest if not line.startswith("  MODUL.txt")]  # not in a database
    return [f"{p}: {first}", *rest,
            f"  lookups: {looked_up} codes and modifiers found with their display"]


def _check_concepts(path: Path, release: CptRelease) -> None:
    """Every concept has a display and the form of a code or a modifier."""
    for code, concept in release.concepts.items():
        if "metadata" in concept.properties.get("kind", []):
            continue  # tx.fhir.org's databases describe themselves with metadata concepts
        if not concept.display:
            raise CptDataError(f"{path}: code {code!r} has no display (no Designations row "
                               "of type 'display')")
        form = MODIFIER_FORM if concept.modifier else CODE_FORM
        if not form.fullmatch(code):
            what = "modifier" if concept.modifier else "code"
            raise CptDataError(f"{path}: {code!r} does not have the form of a CPT {what}")


def _check_lookups(path: Path, release: CptRelease) -> int:
    """Look up a sample of the release through the provider the server builds: each is found,
    with the display the database holds; how many were looked up."""
    provider = CptProvider(release, database_resource(release))
    codes = list(release.concepts)
    step = max(1, len(codes) // SAMPLE_SIZE)
    sample = codes[::step][:SAMPLE_SIZE]
    for code in sample:
        found = provider.locate(code)
        expected = release.concepts[code].display or None
        if found is None or found.display != expected:
            raise CptDataError(f"{path}: lookup of {code!r} does not find the concept stored")
    return len(sample)
