"""Imaging facets derived from CPT radiology descriptors (terminology.cpt.facets)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from terminology.cpt.facets import derive_facets

REPO = Path(__file__).resolve().parents[2]
SHIPPED_FRAGMENT = REPO / "codesystems" / "cpt-2026-imaging.json"

# Real public CPT descriptors, used only as inputs to this pure function.
REAL_DESCRIPTORS = [
    ("72125", "Computed tomography, cervical spine; without contrast material",
     "CT", "cervical-spine", "none"),
    ("72126", "Computed tomography, cervical spine; with contrast material",
     "CT", "cervical-spine", "with"),
    ("72127", "Computed tomography, cervical spine; without contrast material, followed by "
     "contrast material(s) and further sections", "CT", "cervical-spine", "without-then-with"),
    ("72141", "Magnetic resonance (eg, proton) imaging, spinal canal and contents, cervical; "
     "without contrast material", "MR", "cervical-spine", "none"),
    ("72156", "Magnetic resonance (eg, proton) imaging, spinal canal and contents, without "
     "contrast material, followed by contrast material(s) and further sequences; cervical",
     "MR", "cervical-spine", "without-then-with"),
    ("71046", "Radiologic examination, chest; 2 views", "XR", "chest", "none"),
    ("74177", "Computed tomography, abdomen and pelvis; with contrast material(s)",
     "CT", "abdomen-pelvis", "with"),
    ("73721", "Magnetic resonance (eg, proton) imaging, any joint of lower extremity; without "
     "contrast material", "MR", "lower-extremity-joint", "none"),
    ("76700", "Ultrasound, abdominal, real time with image documentation; complete",
     "US", "abdomen", "none"),
    ("77067", "Screening mammography, bilateral (2-view study of each breast), including "
     "computer-aided detection (CAD) when performed", "MG", "breast", "none"),
    ("70450", "Computed tomography, head or brain; without contrast material",
     "CT", "head", "none"),
    ("70551", "Magnetic resonance (eg, proton) imaging, brain (including brain stem); without "
     "contrast material", "MR", "brain", "none"),
    ("71250", "Computed tomography, thorax, diagnostic; without contrast material",
     "CT", "chest", "none"),
    ("74178", "Computed tomography, abdomen and pelvis; without contrast material in one or "
     "both body regions, followed by contrast material(s) and further sections in one or both "
     "body regions", "CT", "abdomen-pelvis", "without-then-with"),
]


@pytest.mark.parametrize(("code", "descriptor", "modality", "region", "contrast"),
                         REAL_DESCRIPTORS, ids=[r[0] for r in REAL_DESCRIPTORS])
def test_real_radiology_descriptors_give_the_expected_facets(
        code: str, descriptor: str, modality: str, region: str, contrast: str) -> None:
    assert derive_facets(code, descriptor) == {
        "modality": modality, "body-region": region, "contrast": contrast}


@pytest.mark.parametrize("code", ["99202", "69999", "80000", "0042T", "7001F", "0001U", "25"])
def test_codes_outside_radiology_have_no_facets(code: str) -> None:
    assert derive_facets(code, "Computed tomography, cervical spine; with contrast material") == {}


def test_radiology_code_with_no_recognisable_modality_has_no_facets() -> None:
    assert derive_facets("77385", "Intensity modulated radiation treatment delivery, simple") == {}


def test_pet_ct_is_pet_not_ct() -> None:
    facets = derive_facets("78815", "Positron emission tomography (PET) with concurrently "
                           "acquired computed tomography (CT) for attenuation correction; "
                           "skull base to mid-thigh")
    assert facets["modality"] == "PET"
    assert "contrast" not in facets  # a radiotracer is not contrast material: no claim


def test_spect_ct_is_nuclear_medicine() -> None:
    facets = derive_facets("78830", "Radiopharmaceutical localization of tumor; tomographic "
                           "(SPECT) with concurrently acquired computed tomography (CT)")
    assert facets == {"modality": "NM"}


def test_nuclear_medicine_section_falls_back_to_nm() -> None:
    assert derive_facets("78300", "Bone and/or joint imaging; limited area") == {"modality": "NM"}


def test_fluoroscopy_without_contrast_wording_makes_no_contrast_claim() -> None:
    assert derive_facets("76000", "Fluoroscopy (separate procedure), up to 1 hour") == {
        "modality": "FL"}


def test_contrast_study_wording_counts_as_with_contrast() -> None:
    facets = derive_facets("74220", "Radiologic examination, esophagus; single-contrast "
                           "(eg, barium) study")
    assert facets["modality"] == "XR"
    assert facets["contrast"] == "with"


def test_without_and_with_contrast_is_without_then_with() -> None:
    facets = derive_facets("77049", "Magnetic resonance imaging, breast, without and with "
                           "contrast material(s); bilateral")
    assert facets == {"modality": "MR", "body-region": "breast", "contrast": "without-then-with"}


def test_ct_angiography_of_the_chest_ignores_noncoronary_in_parentheses() -> None:
    facets = derive_facets("71275", "Computed tomographic angiography, chest (noncoronary), "
                           "with contrast material(s)")
    assert facets == {"modality": "CT", "body-region": "chest", "contrast": "with"}


def test_region_is_left_out_when_it_cannot_be_told() -> None:
    assert derive_facets("77012", "Computed tomography guidance for needle placement") == {
        "modality": "CT", "contrast": "none"}


def test_examples_in_parentheses_are_not_the_region() -> None:
    facets = derive_facets("77080", "Dual-energy X-ray absorptiometry (DXA), bone density "
                           "study, 1 or more sites; axial skeleton (eg, hips, pelvis, spine)")
    assert facets == {"modality": "DXA", "contrast": "none"}


@pytest.mark.parametrize(("descriptor", "region"), [
    ("Radiologic examination, spine, lumbosacral; 2 or 3 views", "lumbar-spine"),
    ("Radiologic examination, spine; thoracic, 2 views", "thoracic-spine"),
    ("Radiologic examination, spine; thoracolumbar junction, minimum of 2 views", "spine"),
    ("Radiologic examination, knee; 1 or 2 views", "lower-extremity-joint"),
    ("Radiologic examination, hip, unilateral, with pelvis when performed; 1 view",
     "lower-extremity-joint"),
    ("Computed tomography, pelvis; without contrast material", "pelvis"),
    ("Computed tomography, soft tissue neck; without contrast material", "neck"),
])
def test_body_region_table(descriptor: str, region: str) -> None:
    assert derive_facets("72000", descriptor).get("body-region") == region


@pytest.mark.skipif(not SHIPPED_FRAGMENT.exists(), reason="codesystems/cpt-2026-imaging.json "
                    "is not in this checkout")
def test_facets_agree_with_the_shipped_imaging_fragment() -> None:
    resource = json.loads(SHIPPED_FRAGMENT.read_text(encoding="utf-8"))
    checked = 0
    for concept in resource["concept"]:
        shipped = {p["code"]: p["valueCode"] for p in concept.get("property", [])
                   if p["code"] in ("modality", "body-region", "contrast")}
        if shipped:
            assert derive_facets(concept["code"], concept["display"]) == shipped, concept["code"]
            checked += 1
    assert checked > 0


MODALITIES = {"CT", "MR", "XR", "US", "MG", "NM", "PET", "FL", "IR", "DXA"}
CONTRASTS = {"none", "with", "without-then-with"}


@given(number=st.integers(min_value=70010, max_value=79999), descriptor=st.text(max_size=200))
def test_any_descriptor_gives_only_known_facet_values(number: int, descriptor: str) -> None:
    facets = derive_facets(str(number), descriptor)
    assert set(facets) <= {"modality", "body-region", "contrast"}
    if facets:
        assert facets["modality"] in MODALITIES
        assert facets.get("contrast", "none") in CONTRASTS
    else:
        assert number < 78000  # the nuclear medicine section always has a modality
