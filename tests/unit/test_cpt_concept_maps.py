"""The ConceptMaps derived from a CPT release (terminology.cpt.concept_maps): the family
stem, and exhaustive checks over the full-size synthetic release (every pair shares stem
and modality, every synthetic family is mapped, the DICOM map covers every imaging code)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from fhir.resources.R4B.conceptmap import ConceptMap

from terminology.cpt.ama.importer import import_ama_release
from terminology.cpt.concept_maps import (
    DICOM_BY_FACET,
    contrast_alternatives_map,
    dicom_modality_map,
    family_stem,
)
from terminology.cpt.provider import CptProvider, database_resource
from terminology.cpt.release import CptRelease
from terminology.cpt.synthetic import write_synthetic_release


@pytest.mark.parametrize(("a", "b"), [
    ("Computed tomography, cervical spine; without contrast material",
     "Computed tomography, cervical spine; with contrast material(s)"),
    ("Computed tomography, abdomen and pelvis; without contrast material",
     "Computed tomography, abdomen and pelvis; without contrast material in one or both body "
     "regions, followed by contrast material(s) and further sections in one or both body regions"),
    ("Magnetic resonance (eg, proton) imaging, spinal canal and contents, cervical; without "
     "contrast material",
     "Magnetic resonance (eg, proton) imaging, spinal canal and contents, without contrast "
     "material, followed by contrast material(s) and further sequences; cervical"),
])
def test_contrast_variants_share_a_family_stem(a: str, b: str) -> None:
    assert family_stem(a) == family_stem(b)


@pytest.mark.parametrize(("a", "b"), [
    ("Radiologic examination, chest; single view", "Radiologic examination, chest; 2 views"),
    ("Computed tomography, cervical spine; without contrast material",
     "Computed tomography, thoracic spine; without contrast material"),
    ("Magnetic resonance (eg, proton) imaging, spinal canal and contents, without contrast "
     "material, followed by contrast material(s) and further sequences; cervical",
     "Magnetic resonance (eg, proton) imaging, spinal canal and contents, without contrast "
     "material, followed by contrast material(s) and further sequences; lumbar"),
])
def test_different_studies_have_different_stems(a: str, b: str) -> None:
    assert family_stem(a) != family_stem(b)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> CptRelease:
    """The full-size synthetic release (11,000 codes), imported."""
    dest = tmp_path_factory.mktemp("synthetic")
    write_synthetic_release(dest)
    return import_ama_release(dest, "2026")


def pairs(concept_map: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["code"], t["code"]) for g in concept_map["group"] for e in g["element"]
            for t in e["target"]]


def facet(release: CptRelease, code: str, name: str) -> str:
    return release.concepts[code].properties[name][0]


def test_every_synthetic_pair_shares_stem_and_modality_and_differs_in_contrast(
        synthetic: CptRelease) -> None:
    found = pairs(contrast_alternatives_map(synthetic, displays=False))
    assert len(found) > 500
    for source, target in found:
        assert source != target
        # the synthetic descriptors are all "stem; contrast variant"
        assert (synthetic.concepts[source].display.split(";")[0]
                == synthetic.concepts[target].display.split(";")[0])
        assert facet(synthetic, source, "modality") == facet(synthetic, target, "modality")
        assert facet(synthetic, source, "contrast") != facet(synthetic, target, "contrast")


def test_every_synthetic_ct_mr_family_is_mapped_completely(synthetic: CptRelease) -> None:
    families: dict[tuple[str, str], list[str]] = defaultdict(list)
    for c in synthetic.concepts.values():
        if c.properties.get("modality", [""])[0] in ("CT", "MR"):
            families[(c.properties["modality"][0], c.display.split(";")[0])].append(c.code)
    expected = {(a, b) for members in families.values() for a in members for b in members
                if facet(synthetic, a, "contrast") != facet(synthetic, b, "contrast")}
    found = set(pairs(contrast_alternatives_map(synthetic, displays=False)))
    assert found == expected
    assert ("72126", "72125") in found and ("72126", "72127") in found


def test_synthetic_dicom_map_covers_every_imaging_code(synthetic: CptRelease) -> None:
    cm = dicom_modality_map(synthetic, displays=False)
    mapped = {e["code"]: [t["code"] for t in e["target"]] for e in cm["group"][0]["element"]}
    imaging = {c.code: c.properties["modality"][0] for c in synthetic.concepts.values()
               if "modality" in c.properties}
    assert mapped.keys() == imaging.keys()
    assert all(mapped[code] == list(DICOM_BY_FACET[m]) for code, m in imaging.items())


def test_derived_maps_are_valid_r4_concept_maps_without_licensed_descriptors(
        synthetic: CptRelease) -> None:
    for cm in (contrast_alternatives_map(synthetic, displays=False),
               dicom_modality_map(synthetic, displays=False)):
        ConceptMap.model_validate(cm)
        assert cm["version"] == "2026"
        assert all("display" not in e for g in cm["group"] for e in g["element"])


@pytest.mark.parametrize(("expression", "rule"), [
    ("72126:59:XU", "59 cannot be used together with XU"),
    ("72126:26:TC", "26 and TC cannot be used together"),
    ("73721:LT:RT", "LT and RT cannot be used together"),
])
def test_pair_rules_on_a_release_that_lists_x_epsu_and_tc(synthetic: CptRelease, expression: str,
                                                           rule: str) -> None:
    provider = CptProvider(synthetic, database_resource(synthetic))
    assert provider.locate(expression) is None
    assert rule in (provider.explain_unknown(expression) or "")
    assert provider.locate("73721:RT") is not None and provider.locate("72126:TC") is not None
