"""ConceptMaps derived from a CPT release's imaging facets: contrast alternatives and DICOM
modality. They are built at load from whatever release is served (the bundled fragment or a
licensed database), carry the release's version, and are registered as ordinary ConceptMaps,
so read, search and $translate need nothing special.

Contrast alternatives (CONTRAST_MAP_URL)
    CPT writes a study family as a common stem with contrast variants as its members:
    "Computed tomography, cervical spine" + "; without contrast material" (72125),
    "; with contrast material" (72126), "; without contrast material, followed by contrast
    material(s) and further sections" (72127). A code's family stem is its descriptor with
    the contrast clause removed: the descriptor is cut into parts at ';' and ',', the parts
    that speak of contrast ("contrast", "further sections/sequences") are dropped, and the
    rest is compared case- and space-insensitively. For the usual form this is the text
    before the semicolon; it also puts 72156 ("..., spinal canal and contents, without
    contrast material, followed by contrast material(s) and further sequences; cervical")
    in the family of 72141/72142 (cervical, without / with), where CPT puts the contrast
    clause in the stem and the level after the semicolon.
    Every imaging code with a contrast facet maps to each other code of its family with the
    same modality and a different contrast facet; each target carries the target's contrast
    as a `product` (property urn:cpt-imaging:property:contrast) and says it in a `comment`.
    Equivalence `relatedto`: the alternative is a different procedure on the same region.
    A code with no such sibling (71045, one-view chest radiograph) is not in the map, so
    $translate answers result=false.

CPT to DICOM modality (DICOM_MAP_URL)
    Every code with a modality facet maps to the DICOM modality code(s)
    (http://dicom.nema.org/resources/ontology/DCM, PS3.16 CID 29) a modality worklist uses,
    equivalence `wider` (the modality covers more than the one study):

        CT -> CT   MR -> MR   US -> US   MG -> MG   NM -> NM   PET -> PT   DXA -> BMD
        FL (fluoroscopy) -> RF   IR (catheter angiography) -> XA
        XR (radiograph)  -> DX, then CR

    Radiography: "XR" is not a DICOM modality. A radiograph is acquired by a digital
    radiography detector (DX) or a computed radiography phosphor-plate reader (CR), and the
    CPT code does not say which: the room decides. So XR maps to both, DX first (the usual
    equipment today), and a router picks the one its site has. RG (film-screen) is left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from terminology.cpt import CPT_URL
from terminology.cpt.release import CptConcept, CptRelease

MAP_BASE = "https://terminology.cpt-imaging.org/fhir/ConceptMap/"
CONTRAST_MAP_URL = MAP_BASE + "cpt-contrast-alternatives"
DICOM_MAP_URL = MAP_BASE + "cpt-to-dicom-modality"
DICOM_URL = "http://dicom.nema.org/resources/ontology/DCM"
CONTRAST_PROPERTY = "urn:cpt-imaging:property:contrast"
DERIVED_COPYRIGHT = ("Derived from CPT, © Copyright American Medical Association. All rights "
                     "reserved. The mapping is this server's, not the AMA's.")

# DICOM PS3.16 CID 29 (Acquisition Modality) codes and their DCM code meanings.
DICOM_DISPLAY = {
    "CT": "Computed Tomography", "MR": "Magnetic Resonance", "US": "Ultrasound",
    "MG": "Mammography", "NM": "Nuclear Medicine", "PT": "Positron emission tomography",
    "BMD": "Bone Mineral Densitometry", "RF": "Radio Fluoroscopy", "XA": "X-Ray Angiography",
    "DX": "Digital Radiography", "CR": "Computed Radiography",
}
DICOM_BY_FACET: dict[str, tuple[str, ...]] = {
    "CT": ("CT",), "MR": ("MR",), "US": ("US",), "MG": ("MG",), "NM": ("NM",),
    "PET": ("PT",), "DXA": ("BMD",), "FL": ("RF",), "IR": ("XA",), "XR": ("DX", "CR"),
}
_XR_COMMENT = ("CPT does not say how the radiograph is acquired: DX (digital radiography) or "
               "CR (computed radiography), whichever the site's equipment is")
CONTRAST_WORDING = {
    "none": "without contrast material",
    "with": "with contrast material",
    "without-then-with": "without contrast material, followed by contrast material",
}

_PART_SEPARATORS = re.compile(r"[;,]")
_CONTRAST_PART = re.compile(r"\bcontrast\b|\bfurther (?:sections|sequences)\b", re.IGNORECASE)


def family_stem(descriptor: str) -> str:
    """The descriptor without its contrast clause, normalised (see the module docstring)."""
    parts = (" ".join(p.split()).lower() for p in _PART_SEPARATORS.split(descriptor))
    return ", ".join(p for p in parts if p and not _CONTRAST_PART.search(p))


def _facet(concept: CptConcept, name: str) -> str | None:
    values = concept.properties.get(name)
    return values[0] if values else None


def contrast_families(concepts: Iterable[CptConcept]) -> list[list[CptConcept]]:
    """Families of two or more imaging codes (same stem and modality, contrast facet set),
    in release order."""
    families: dict[tuple[str, str], list[CptConcept]] = {}
    for c in concepts:
        modality, contrast = _facet(c, "modality"), _facet(c, "contrast")
        if c.modifier or modality is None or contrast is None:
            continue
        families.setdefault((modality, family_stem(c.display)), []).append(c)
    return [members for members in families.values() if len(members) > 1]


def _element(source: CptConcept, targets: list[dict[str, Any]], displays: bool) -> dict[str, Any]:
    element: dict[str, Any] = {"code": source.code}
    if displays and source.display:
        element["display"] = source.display
    element["target"] = targets
    return element


def contrast_alternatives_map(release: CptRelease, displays: bool) -> dict[str, Any]:
    """The contrast-alternatives ConceptMap of a release (`displays`: include descriptors,
    for the bundled fragment only; a licensed release's descriptors are not handed out)."""
    elements: dict[str, dict[str, Any]] = {}
    for family in contrast_families(release.concepts.values()):
        for source in family:
            targets = [_contrast_target(t, displays) for t in family
                       if t is not source and _facet(t, "contrast") != _facet(source, "contrast")]
            if targets:
                elements[source.code] = _element(source, targets, displays)
    ordered = [elements[code] for code in release.concepts if code in elements]
    return _concept_map(
        release, CONTRAST_MAP_URL, "CptContrastAlternatives",
        "CPT imaging: the same study with other contrast",
        "For each CPT imaging code, the codes of the same study (same descriptor stem and "
        "modality) with different contrast, e.g. for a patient who cannot receive contrast. "
        "Each target's contrast is its product (urn:cpt-imaging:property:contrast). Derived "
        f"at load from CPT {release.version}.",
        {"source": CPT_URL, "sourceVersion": release.version, "target": CPT_URL,
         "targetVersion": release.version, "element": ordered})


def _contrast_target(target: CptConcept, displays: bool) -> dict[str, Any]:
    contrast = _facet(target, "contrast") or ""
    out: dict[str, Any] = {"code": target.code}
    if displays and target.display:
        out["display"] = target.display
    out["equivalence"] = "relatedto"
    out["comment"] = (f"The same study {CONTRAST_WORDING.get(contrast, contrast)} "
                      f"(contrast: {contrast})")
    out["product"] = [{"property": CONTRAST_PROPERTY, "value": contrast}]
    return out


def dicom_modality_map(release: CptRelease, displays: bool) -> dict[str, Any]:
    """The CPT to DICOM modality ConceptMap of a release."""
    elements = []
    for c in release.concepts.values():
        modality = _facet(c, "modality")
        if c.modifier or modality not in DICOM_BY_FACET:
            continue
        targets: list[dict[str, Any]] = []
        for code in DICOM_BY_FACET[modality]:
            target: dict[str, Any] = {"code": code, "display": DICOM_DISPLAY[code],
                                      "equivalence": "wider"}
            if modality == "XR":
                target["comment"] = _XR_COMMENT
            targets.append(target)
        elements.append(_element(c, targets, displays))
    return _concept_map(
        release, DICOM_MAP_URL, "CptToDicomModality", "CPT imaging code to DICOM modality",
        "For each CPT imaging code, the DICOM acquisition modality (PS3.16 CID 29) whose "
        "worklist performs it, for order routing. Radiographs (no single DICOM modality) map "
        f"to DX and CR. Derived at load from CPT {release.version}.",
        {"source": CPT_URL, "sourceVersion": release.version, "target": DICOM_URL,
         "element": elements})


def _concept_map(release: CptRelease, url: str, name: str, title: str, description: str,
                 group: dict[str, Any]) -> dict[str, Any]:
    slug = url.rsplit("/", 1)[1]
    return {
        "resourceType": "ConceptMap",
        "id": f"{slug}-{_id_safe(release.version)}",
        "url": url,
        "version": release.version,
        "name": name,
        "title": title,
        "status": "active",
        "experimental": False,
        "publisher": "CPT imaging terminology server (derived from the loaded CPT release)",
        "description": description,
        "copyright": DERIVED_COPYRIGHT,
        "sourceUri": CPT_URL,
        "targetUri": group["target"],
        "group": [group] if group["element"] else [],
    }


def _id_safe(version: str) -> str:
    """A version as FHIR id characters ([A-Za-z0-9.-], 64 at most with the slug)."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", version)[:30]


def derived_concept_maps(release: CptRelease, displays: bool) -> list[dict[str, Any]]:
    """Both derived ConceptMaps of a release."""
    return [contrast_alternatives_map(release, displays), dicom_modality_map(release, displays)]
