"""Imaging facets (modality, body region, contrast) derived from CPT radiology descriptors.

These facets are this project's, not the AMA's: they let order sets and decision support ask
for "MR of the cervical spine without contrast" without listing codes. They are derived only
for radiology codes 70010-79999 (five digits), from the long descriptor, by three ordered
tables of patterns. The first matching row of each table wins. Matching is case-insensitive
(except the acronyms PET, SPECT, DXA and CT, matched as upper-case words).

Modality (`modality`)
    ====  =================================================================================
    PET   "positron emission tomography", "PET"   (before CT: PET/CT descriptors name both)
    NM    "radiopharmaceutical", "radionuclide", "scintigraphy", "SPECT", "nuclear medicine",
          "myocardial perfusion imaging"           (before CT: SPECT/CT names both)
    MG    "mammography", "mammogram", "breast tomosynthesis"
    DXA   "dual-energy x-ray absorptiometry", "DXA" (bone density)
    CT    "computed tomography", "computed tomographic" (angiography), "CT"
    MR    "magnetic resonance" (imaging, angiography, spectroscopy)
    US    "ultrasound", "ultrasonic", "sonography", "echography", "Doppler"
    FL    "fluoroscopy", "fluoroscopic", "myelography"
    IR    catheter studies: "angiography", "arteriography", "aortography", "venography",
          "lymphangiography", "transcatheter"   (CT/MR angiography matched earlier)
    XR    "radiologic examination", "radiograph", "x-ray"
    NM    fallback for any other code in 78000-79999 (the nuclear medicine section)
    ====  =================================================================================

    A code whose modality cannot be told (e.g. radiation oncology, 77261-77799) gets no
    facets at all: an empty dict.

Contrast (`contrast`), as stated by the descriptor
    without-then-with  "without contrast material(s) ..., followed by contrast" (the clause
                       may say more in between, e.g. 74178 "in one or both body regions"),
                       "without and with contrast"
    with               "with contrast"
    none               "without contrast"
    with               any other mention of contrast ("single-contrast", "contrast (eg,
                       barium) enema", "microbubble ... contrast") or of a study that is a
                       contrast study by definition: barium, arthrography, myelography,
                       angiography, venography, urography, cholangiography, ...
    none               no contrast wording, for CT, MR, XR, US, MG and DXA: CPT states
                       contrast in every CT and MR descriptor that uses it, and plain films,
                       ultrasound, mammography and DXA are non-contrast unless they say so
    (absent)           no contrast wording for FL, IR, NM and PET: fluoroscopic and catheter
                       studies often use contrast without saying so, and a radiotracer is not
                       contrast material, so we make no claim

Body region (`body-region`), matched after removing parenthesised text (CPT puts examples and
inclusions there: "axial skeleton (eg, hips, pelvis, spine)" is not a spine study)
    spine rows      when the descriptor names the spine ("spine", "spinal", "myelography"):
                    the level named first in the text wins: "cervical" -> cervical-spine,
                    "thoracic" -> thoracic-spine, "lumbar"/"lumbosacral" -> lumbar-spine;
                    no level (or "thoracolumbar", "entire") -> spine.  This reads 72156
                    "spinal canal and contents, without contrast ...; cervical" correctly.
    breast          "breast", "mammography"
    head            "head or brain" (CT 70450 covers both, so the broader region)
    brain           "brain"
    abdomen-pelvis  "abdomen and pelvis"
    lower-extremity-joint  "joint of lower extremity", "hip", "knee", "ankle"
    upper-extremity-joint  "joint of upper extremity", "shoulder", "elbow", "wrist"
    lower-extremity "lower extremity", "leg", "femur", "tibia", "fibula", "foot", "toe(s)",
                    "calcaneus"
    upper-extremity "upper extremity", "arm", "forearm", "humerus", "hand", "finger(s)"
    heart           "heart", "cardiac", "coronary", "myocardial"
    chest           "chest", "thorax", "ribs", "sternum"
    abdomen         "abdomen", "abdominal"
    pelvis          "pelvis", "pelvic"
    sacrum          "sacrum", "coccyx"
    retroperitoneum "retroperitoneal", "retroperitoneum"
    neck            "neck", "larynx", "thyroid"  (so "head and neck" soft tissue is neck)
    face            "face", "facial", "maxillofacial", "sinuses", "mandible", "nasal bones"
    head            "head", "skull", "orbit", "sella", "posterior fossa", "temporal bone",
                    "mastoid"
    (absent)        no row matches: modality and contrast are still given
"""

from __future__ import annotations

import re

RADIOLOGY_LOW = 70010
RADIOLOGY_HIGH = 79999
NUCLEAR_MEDICINE_LOW = 78000

# Modalities whose descriptors state contrast whenever it is used (see the module docstring).
_CONTRAST_STATED = frozenset({"CT", "MR", "XR", "US", "MG", "DXA"})


def _ci(pattern: str) -> re.Pattern[str]:
    """A case-insensitive pattern."""
    return re.compile(pattern, re.IGNORECASE)


MODALITY_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i:positron emission tomograph)|\bPET\b"), "PET"),
    (re.compile(r"(?i:radiopharmaceutical|radionuclide|scintigra|nuclear medicine"
                r"|myocardial perfusion imaging)|\bSPECT\b"), "NM"),
    (_ci(r"mammogra|breast tomosynthesis"), "MG"),
    (re.compile(r"(?i:dual-energy x-ray absorptiometry)|\bDXA\b"), "DXA"),
    (re.compile(r"(?i:computed tomograph)|\bCT\b"), "CT"),
    (_ci(r"magnetic resonance"), "MR"),
    (_ci(r"ultraso(?:und|nic|nograph)|\bsonograph|echograph|\bdoppler\b"), "US"),
    (_ci(r"fluoroscop|myelograph"), "FL"),
    (_ci(r"angiograph|arteriograph|aortograph|venograph|transcatheter"), "IR"),
    (_ci(r"radiologic examination|radiograph|\bx-ray"), "XR"),
)

CONTRAST_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (_ci(r"\bwithout contrast[^;]*?\bfollowed by contrast|\bwithout and with contrast"),
     "without-then-with"),
    (_ci(r"\bwith contrast"), "with"),
    (_ci(r"\bwithout contrast"), "none"),
    (_ci(r"\bcontrast\b|barium|arthrograph|myelograph|angiograph|arteriograph|aortograph"
         r"|venograph|urograph|pyelograph|cholangiograph|cystograph|hysterosalpingograph"
         r"|sialograph|dacryocystograph|discograph|fistulograph"), "with"),
)

SPINE = _ci(r"\bspin(?:e|al)\b|myelograph")
SPINE_LEVELS: tuple[tuple[re.Pattern[str], str], ...] = (
    (_ci(r"\bthoracolumbar\b|\bentire\b"), "spine"),
    (_ci(r"\bcervical\b"), "cervical-spine"),
    (_ci(r"\bthoracic\b"), "thoracic-spine"),
    (_ci(r"\blumb(?:ar|osacral)\b"), "lumbar-spine"),
)

REGION_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (_ci(r"\bbreasts?\b|mammogra"), "breast"),
    (_ci(r"\bhead or brain\b"), "head"),
    (_ci(r"\bbrain\b"), "brain"),
    (_ci(r"\babdomen and pelvis\b"), "abdomen-pelvis"),
    (_ci(r"\bjoints? of lower extremit|\bhips?\b|\bknees?\b|\bankles?\b"),
     "lower-extremity-joint"),
    (_ci(r"\bjoints? of upper extremit|\bshoulders?\b|\belbows?\b|\bwrists?\b"),
     "upper-extremity-joint"),
    (_ci(r"\blower extremit|\blegs?\b|\bfemur\b|\btibia\b|\bfibula\b|\bfoot\b|\bfeet\b"
         r"|\btoes?\b|\bcalcaneus\b"), "lower-extremity"),
    (_ci(r"\bupper extremit|\barms?\b|\bforearm\b|\bhumerus\b|\bhands?\b|\bfingers?\b"),
     "upper-extremity"),
    (_ci(r"\bheart\b|\bcardiac\b|\bcoronary\b|\bmyocardial\b"), "heart"),
    (_ci(r"\bchest\b|\bthorax\b|\bribs?\b|\bsternum\b"), "chest"),
    (_ci(r"\babdomen\b|\babdominal\b"), "abdomen"),
    (_ci(r"\bpelvis\b|\bpelvic\b"), "pelvis"),
    (_ci(r"\bsacrum\b|\bcoccyx\b"), "sacrum"),
    (_ci(r"\bretroperitone"), "retroperitoneum"),
    (_ci(r"\bneck\b|\blarynx\b|\bthyroid\b"), "neck"),
    (_ci(r"\bface\b|\bfacial\b|\bmaxillofacial\b|\bsinuses\b|\bmandible\b|\bnasal bones\b"),
     "face"),
    (_ci(r"\bhead\b|\bskull\b|\borbits?\b|\bsella\b|\bposterior fossa\b|\btemporal bone"
         r"|\bmastoids?\b"), "head"),
)

_PARENTHESISED = re.compile(r"\([^()]*\)")


def derive_facets(code: str, descriptor: str) -> dict[str, str]:
    """The imaging facets of a radiology code (70010-79999): modality, body-region, contrast.

    Empty for any other code and for radiology codes whose modality cannot be told; keys
    whose value cannot be told are left out (see the module docstring for the tables).
    """
    if not _is_radiology(code):
        return {}
    modality = _modality(int(code), descriptor)
    if modality is None:
        return {}
    facets = {"modality": modality}
    region = _body_region(descriptor)
    if region is not None:
        facets["body-region"] = region
    contrast = _contrast(modality, descriptor)
    if contrast is not None:
        facets["contrast"] = contrast
    return facets


def _is_radiology(code: str) -> bool:
    """Whether the code is a five-digit code in the radiology section."""
    return len(code) == 5 and code.isascii() and code.isdigit() and (
        RADIOLOGY_LOW <= int(code) <= RADIOLOGY_HIGH)


def _first(rules: tuple[tuple[re.Pattern[str], str], ...], text: str) -> str | None:
    """The value of the first rule whose pattern occurs in the text."""
    for pattern, value in rules:
        if pattern.search(text):
            return value
    return None


def _modality(number: int, descriptor: str) -> str | None:
    """The modality from the descriptor, else NM for the nuclear medicine section."""
    found = _first(MODALITY_RULES, descriptor)
    if found is None and number >= NUCLEAR_MEDICINE_LOW:
        return "NM"
    return found


def _contrast(modality: str, descriptor: str) -> str | None:
    """The contrast the descriptor states; `none` by default only where that is a safe claim."""
    found = _first(CONTRAST_RULES, descriptor)
    if found is None and modality in _CONTRAST_STATED:
        return "none"
    return found


def _body_region(descriptor: str) -> str | None:
    """The body region named outside parentheses, spine levels first."""
    text = _without_parentheses(descriptor)
    if SPINE.search(text):
        return _spine_level(text)
    return _first(REGION_RULES, text)


def _spine_level(text: str) -> str:
    """The spine region: the level named earliest in the text, or the whole spine."""
    hits = [(m.start(), value) for pattern, value in SPINE_LEVELS
            if (m := pattern.search(text)) is not None]
    return min(hits)[1] if hits else "spine"


def _without_parentheses(text: str) -> str:
    """The text with parenthesised parts (innermost first) removed."""
    previous = None
    while previous != text:
        previous, text = text, _PARENTHESISED.sub(" ", text)
    return text

