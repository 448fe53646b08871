"""ValueSet/$diff (an operation of this server): what a new release of a code system changes
in one value set (an order set) — its expansion under release `from` against release `to`.

    GET /fhir/ValueSet/$diff?url=<value set>&from=2025&to=2026[&system=<CPT url>]

The value set is a stored or bundled one (`url`, `valueSetVersion`, or the instance of
/ValueSet/{id}/$diff) or sent inline (`valueSet`). Both expansions use the code system
(`system`, CPT by default) at the version asked, whatever version an include names
(force-system-version): rule-based and enumerated includes alike. The answer has the head and
totals of CodeSystem/$diff (terminology.operations.releases.cs_diff), then one parameter per code of that
system whose membership or display changes:

* `added`   parts `code`, `display`, `listed`: a rule now picks the code up;
* `removed` parts `code`, `display` (the old one), `reason` (`deleted`: the code is gone
  from the code system; `rule`: it still exists but no include selects it any more) and
  `listed`;
* `revised` parts `code`, `display` (new), `previous` (old), `listed`.

`listed` is true when an include names the code in `concept`: a deleted listed code is a
code to fix in the order set's definition.
"""

from __future__ import annotations

from typing import Any

from terminology.cpt import CPT_URL
from terminology.errors import BadRequest
from terminology.operations.context import OperationContext
from terminology.operations.lookup import resolve_code_system
from terminology.operations.releases.cs_diff import (
    Change,
    ReleaseDiff,
    page_parameters,
    required_text,
)
from terminology.params import ParamBag
from terminology.providers.base import CodeSystemProvider
from terminology.registry import Registry
from terminology.settings import Settings
from terminology.valuesets.entries import ExpansionEntry
from terminology.valuesets.expansion import expand_compose
from terminology.valuesets.options import ComposeOptions, vs_canonical
from terminology.valuesets.resolution import resolve_value_set


def _members(registry: Registry, value_set: dict[str, Any], provider: CodeSystemProvider,
             settings: Settings) -> dict[str, ExpansionEntry]:
    """The value set's members from `provider`'s code system, with that version forced."""
    options = ComposeOptions(force_versions={provider.url: provider.version or ""})
    expansion = expand_compose(registry, value_set, options, max_size=settings.max_expansion_size)
    return {e.code: e for e in expansion.members if e.system == provider.url}


def _display(entry: ExpansionEntry) -> str | None:
    """The code system's display of a member (not a display the compose gives it)."""
    return entry.concept.display if entry.concept is not None else entry.display


def listed_codes(value_set: dict[str, Any], system: str) -> set[str]:
    """The codes of `system` an include names one by one in `concept`."""
    includes = (value_set.get("compose") or {}).get("include", [])
    return {c.get("code", "") for inc in includes if inc.get("system") == system
            for c in inc.get("concept", [])}


def value_set_diff(registry: Registry, value_set: dict[str, Any], before: CodeSystemProvider,
                   after: CodeSystemProvider, settings: Settings) -> ReleaseDiff:
    """The value set's members added, removed and revised from release `before` to `after`."""
    old = _members(registry, value_set, before, settings)
    new = _members(registry, value_set, after, settings)
    listed = listed_codes(value_set, after.url)
    added = [Change("added", code, _display(e), listed=code in listed)
             for code, e in new.items() if code not in old]
    removed = [Change("removed", code, _display(e),
                      reason="deleted" if after.locate(code) is None else "rule",
                      listed=code in listed)
               for code, e in old.items() if code not in new]
    revised = [Change("revised", code, _display(e), _display(old[code]), listed=code in listed)
               for code, e in new.items()
               if code in old and _display(e) != _display(old[code])]
    return ReleaseDiff({k: sorted(v, key=lambda c: c.code) for k, v in
                        (("added", added), ("removed", removed), ("revised", revised))})


def target_value_set(ctx: OperationContext) -> dict[str, Any]:
    """The value set compared: the instance, the inline `valueSet`, or `url` (+version)."""
    if ctx.instance is not None:
        found = ctx.registry.value_set(ctx.instance.get("url", ""), ctx.instance.get("version"))
        return found or ctx.instance
    bag: ParamBag = ctx.bag
    inline = bag.one("valueSet")
    if inline is not None:
        if not isinstance(inline.resource, dict) or inline.resource.get("resourceType") != "ValueSet":
            raise BadRequest("The parameter 'valueSet' must carry a ValueSet", expression="valueSet")
        return inline.resource
    url = bag.text("url")
    if not url:
        raise BadRequest("ValueSet/$diff needs a value set: 'url', 'valueSet' or an instance id",
                         expression="url")
    return resolve_value_set(ctx.registry, url, bag.text("valueSetVersion"))


def handle_vs_diff(ctx: OperationContext) -> dict[str, Any]:
    """ValueSet/$diff: the value set's expansion under release `from` against release `to`."""
    value_set = target_value_set(ctx)
    system = ctx.bag.text("system") or CPT_URL
    before = resolve_code_system(ctx.registry, system, required_text(ctx.bag, "from", "$diff"))
    after = resolve_code_system(ctx.registry, system, required_text(ctx.bag, "to", "$diff"))
    diff = value_set_diff(ctx.registry, value_set, before, after, ctx.settings)
    diff = diff.search(ctx.bag.text("filter"))
    head: list[dict[str, Any]] = []
    if value_set.get("url"):
        head.append({"name": "url", "valueUri": value_set["url"]})
    head += [{"name": "system", "valueUri": after.url},
             {"name": "from", "valueString": before.version or "(none)"},
             {"name": "to", "valueString": after.version or "(none)"}]
    return page_parameters(diff, head, ctx.bag, ctx.settings, after.url == CPT_URL,
                           f"comparison of the value set '{vs_canonical(value_set)}' under "
                           f"versions {before.version} and {after.version}")
