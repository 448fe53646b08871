"""Display language: which display to show for a concept given displayLanguage/Accept-Language."""

from __future__ import annotations

from terminology.providers.base import CodeSystemProvider, Concept


def parse_languages(header: str | None) -> list[str]:
    """Language tags from a displayLanguage value or an Accept-Language header, best first."""
    if not header:
        return []
    weighted: list[tuple[float, int, str]] = []
    for i, item in enumerate(header.split(",")):
        tag, _, params = item.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag and q > 0:
            weighted.append((-q, i, tag.strip()))
    return [t for _, _, t in sorted(weighted)]


def language_matches(wanted: str, have: str | None) -> bool:
    """'en' matches 'en' and 'en-US'; '*' matches anything."""
    if have is None:
        return False
    if wanted == "*":
        return True
    w, h = wanted.lower(), have.lower()
    return h == w or h.startswith(w + "-") or w.startswith(h + "-")


def pick_display(provider: CodeSystemProvider, concept: Concept, languages: str | None) -> str | None:
    """The display in the first requested language that has one; else the default display."""
    for lang in parse_languages(languages):
        if provider.language and language_matches(lang, provider.language) and concept.display:
            return concept.display
        for d in concept.designations:
            if language_matches(lang, d.language) and (d.use is None or _is_display_use(d.use)):
                return d.value
    return concept.display


def _is_display_use(use: dict[str, object]) -> bool:
    return use.get("code") in ("display", "preferredForLanguage") or (
        use.get("system") == "http://snomed.info/sct" and use.get("code") == "900000000000013009"
    )
