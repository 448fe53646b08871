"""Loading FHIR content: files -> validated resources -> a Registry, all or nothing.

Each resource is validated with fhir.resources (R4B models, wire-compatible with R4 for
CodeSystem, ValueSet, ConceptMap and Bundle) plus the checks those models do not make:
required code bindings, duplicate codes, parents that do not exist. fhir.resources takes
seconds on big resources, so the sha256 of every resource already validated is remembered
and a restart with unchanged content skips the model validation.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from terminology.cpt import CPT_URL, served_releases
from terminology.cpt.compare import ChangesMemo
from terminology.cpt.provider import CptProvider
from terminology.cpt.release import CptDataError
from terminology.cpt.rules import CPT_RULES, RULE_SETS
from terminology.cpt.shared import ConceptPool
from terminology.errors import BadRequest
from terminology.packages import PackageError, package_resources
from terminology.providers.base import CodeSystemProvider
from terminology.providers.fhir import FhirCodeSystemProvider
from terminology.registry import Registry, version_key
from terminology.settings import Settings

RESOURCE_TYPES = ("CodeSystem", "ValueSet", "ConceptMap")
PUBLICATION_STATUS = frozenset({"draft", "active", "retired", "unknown"})
CS_CONTENT = frozenset({"not-present", "example", "fragment", "complete", "supplement"})
HIERARCHY_MEANING = frozenset({"grouped-by", "is-a", "part-of", "classified-with"})
NOT_RESOURCES = frozenset({"package.json", ".index.json"})
log = logging.getLogger("terminology.content")


class ContentError(Exception):
    """Invalid content: names the file, the element path and the problem."""

    def __init__(self, source: str, path: str, problem: str) -> None:
        super().__init__(f"{source}: {path}: {problem}")
        self.source, self.path, self.problem = source, path, problem


@dataclass(slots=True)
class LoadedResource:
    """A resource dict with where it came from."""

    source: str
    resource: dict[str, Any]


def _model_errors(resource: dict[str, Any], lenient: bool = False) -> list[tuple[str, str]]:
    """(element path, message) pairs from fhir.resources for one resource.

    `lenient` (resources sent with a request) lets required elements be missing: the
    operations report those themselves, with the message a client expects (a filter with
    no value is an error of the compose, not of the transport).
    """
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    model = get_fhir_model_class(resource["resourceType"])
    try:
        model.model_validate(resource)
    except ValidationError as e:
        out = []
        for err in e.errors():
            if lenient and str(err.get("type", "")).endswith("missing"):
                continue
            loc = ".".join(str(p) for p in err.get("loc", ()))
            out.append((f"{resource['resourceType']}.{loc}" if loc else resource["resourceType"],
                        str(err.get("msg", "invalid"))))
        return out
    return []


def _binding_errors(resource: dict[str, Any], lenient: bool = False) -> Iterator[tuple[str, str]]:
    """Checks fhir.resources does not make: required bindings, duplicates, missing parents."""
    rtype = resource["resourceType"]
    status = resource.get("status")
    if status not in PUBLICATION_STATUS and not (lenient and status is None):
        yield f"{rtype}.status", f"'{status}' is not a publication-status code"
    if rtype != "CodeSystem":
        return
    content = resource.get("content")
    if content not in CS_CONTENT and not (lenient and content is None):
        yield "CodeSystem.content", f"'{content}' is not a codesystem-content-mode code"
    meaning = resource.get("hierarchyMeaning")
    if meaning is not None and meaning not in HIERARCHY_MEANING:
        yield "CodeSystem.hierarchyMeaning", f"'{meaning}' is not a hierarchy-meaning code"
    seen: set[str] = set()
    parents: list[tuple[str, str]] = []
    for path, concept in _walk_concepts(resource.get("concept", []), "CodeSystem.concept"):
        code = str(concept.get("code"))
        if code in seen:
            yield f"{path}.code", f"duplicate code '{code}'"
        seen.add(code)
        for i, prop in enumerate(concept.get("property", [])):
            if prop.get("code") in ("parent", "subsumedBy") and "valueCode" in prop:
                parents.append((f"{path}.property[{i}]", prop["valueCode"]))
    for path, parent in parents:
        if parent not in seen:
            yield path, f"parent '{parent}' is not a code in this CodeSystem"


def _walk_concepts(concepts: list[dict[str, Any]], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for i, c in enumerate(concepts):
        here = f"{path}[{i}]"
        yield here, c
        yield from _walk_concepts(c.get("concept", []), f"{here}.concept")


class ValidationMemo:
    """Hashes of resources that passed validation, remembered on disk across restarts."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._known: set[str] = set()
        self._added: list[str] = []
        if path is not None and path.exists():
            self._known = set(path.read_text().split())

    def known(self, digest: str) -> bool:
        return digest in self._known

    def remember(self, digest: str) -> None:
        if digest not in self._known:
            self._known.add(digest)
            self._added.append(digest)

    def save(self) -> None:
        """Append new hashes; a cache that cannot be written only costs time next start."""
        if self.path is None or not self._added:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write("".join(d + "\n" for d in self._added))
            self._added.clear()
        except OSError:
            pass


def validate_resource(
    resource: dict[str, Any], source: str, memo: ValidationMemo | None = None,
    lenient: bool = False,
) -> None:
    """Raise ContentError for the first problem in `resource` (lenient: see _model_errors)."""
    rtype = resource.get("resourceType")
    if rtype not in RESOURCE_TYPES:
        raise ContentError(source, "resourceType", f"'{rtype}' is not CodeSystem, ValueSet or ConceptMap")
    for path, problem in _binding_errors(resource, lenient):
        raise ContentError(source, path, problem)
    digest = hashlib.sha256(orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)).hexdigest()
    if memo is not None and memo.known(digest):
        return
    for path, problem in _model_errors(resource, lenient):
        raise ContentError(source, path, problem)
    if memo is not None:
        memo.remember(digest)


def resource_problems(resource: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (element path, problem) the loader's checks find in `resource` (none: valid)."""
    rtype = resource.get("resourceType")
    if rtype not in RESOURCE_TYPES:
        return [("resourceType", f"'{rtype}' is not CodeSystem, ValueSet or ConceptMap")]
    return [*_binding_errors(resource), *_model_errors(resource)]


def read_resources(path: Path, skipped: Counter[str] | None = None) -> list[LoadedResource]:
    """The CodeSystem/ValueSet/ConceptMap resources in one JSON file (a Bundle is unpacked).

    Resources of other types (StructureDefinition, examples...) are not terminology content:
    they are skipped and counted by type in `skipped`; one without a resourceType is an error.
    """
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as e:
        raise ContentError(str(path), "(file)", f"not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise ContentError(str(path), "(file)", "not a JSON object")
    if data.get("resourceType") == "Bundle":
        out = []
        for i, entry in enumerate(data.get("entry", [])):
            res = entry.get("resource")
            if not isinstance(res, dict):
                raise ContentError(str(path), f"Bundle.entry[{i}]", "entry has no resource")
            if _terminology(res, f"{path} (Bundle.entry[{i}])", skipped):
                out.append(LoadedResource(f"{path} (Bundle.entry[{i}])", res))
        return out
    return [LoadedResource(str(path), data)] if _terminology(data, str(path), skipped) else []


def _terminology(resource: dict[str, Any], source: str, skipped: Counter[str] | None) -> bool:
    """Whether to load `resource`; other FHIR resource types are counted in `skipped`."""
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        raise ContentError(source, "resourceType", "missing: not a FHIR resource")
    if rtype in RESOURCE_TYPES:
        return True
    if skipped is not None:
        skipped[rtype] += 1
    return False


def content_files(dirs: Iterable[Path]) -> list[Path]:
    """The *.json files under each directory, sorted for a stable load order."""
    files: list[Path] = []
    for d in dirs:
        if d.is_file():
            files.append(d)
        elif d.is_dir():
            # package.json and .index.json describe a package folder; they are not resources.
            files.extend(sorted(p for p in d.rglob("*.json")
                                if p.is_file() and p.name not in NOT_RESOURCES))
        else:
            raise ContentError(str(d), "(folder)", "does not exist")
    return files


def load_registry(dirs: Iterable[Path], memo_path: Path | None = None,
                  packages: Iterable[Path] = (), cpt_rules: str = CPT_RULES) -> Registry:
    """Validate every resource in `dirs` and `packages`, then build the registry.

    Nothing is half-loaded: the first invalid resource raises ContentError. Resources of
    other types are skipped and logged by type. The CPT ConceptMaps derived from each CPT
    release loaded are added at the end.
    """
    registry = _load_files(dirs, memo_path, packages, cpt_rules)
    _add_derived_maps(registry)
    return registry


def _load_files(dirs: Iterable[Path], memo_path: Path | None, packages: Iterable[Path],
                cpt_rules: str, *, without_cpt: bool = False) -> Registry:
    """The registry of the resources in `dirs` and `packages` (see load_registry);
    `without_cpt`: CPT CodeSystems among them (the bundled fragment) are validated but not
    served, because the operator's CPT databases are."""
    memo = ValidationMemo(memo_path)
    loaded: list[LoadedResource] = []
    skipped: Counter[str] = Counter()
    for f in content_files(dirs):
        loaded.extend(read_resources(f, skipped))
    for package in packages:
        try:
            found = package_resources(package, RESOURCE_TYPES)
        except PackageError as e:
            raise ContentError(e.source, "(package)", e.problem) from e
        loaded.extend(LoadedResource(source, r) for source, r in found)
    if skipped:
        log.info("skipped resources that are not terminology content: %s",
                 ", ".join(f"{n} {t}" for t, n in sorted(skipped.items())))
    for item in loaded:
        validate_resource(item.resource, item.source, memo)
    registry = Registry()
    seen: dict[tuple[str, str, str | None], str] = {}
    for item in loaded:
        r = item.resource
        key = (r["resourceType"], r.get("url", ""), r.get("version"))
        if key in seen:
            raise ContentError(item.source, f"{r['resourceType']}.url",
                               f"{key[1]}|{key[2]} is also defined in {seen[key]}")
        seen[key] = item.source
        if without_cpt and r["resourceType"] == "CodeSystem" and r.get("url") == CPT_URL:
            continue
        add_resource(registry, r, cpt_rules)
    memo.save()
    for provider in registry.providers():
        prepare = getattr(provider, "prepare_indexes", None)
        if prepare is not None:
            prepare()  # at load, before workers fork: they share the indexes
    return registry


def make_provider(resource: dict[str, Any], cpt_rules: str = CPT_RULES) -> CodeSystemProvider:
    """The provider for a CodeSystem resource: CPT's for CPT (checking expressions with the
    rule set `cpt_rules`), the FHIR provider otherwise."""
    if resource.get("url") == CPT_URL:
        return CptProvider.from_codesystem(resource, cpt_rules)
    return FhirCodeSystemProvider(resource)


def add_resource(registry: Registry, resource: dict[str, Any], cpt_rules: str = CPT_RULES) -> None:
    """Put one validated resource into the registry."""
    rtype = resource["resourceType"]
    if rtype == "CodeSystem":
        if resource.get("content") == "supplement":
            registry.add_supplement(resource)
        else:
            registry.add_code_system(make_provider(resource, cpt_rules))
    elif rtype == "ValueSet":
        registry.add_value_set(resource)
    elif rtype == "ConceptMap":
        registry.add_concept_map(resource)


def apply_stored(registry: Registry, resource_type: str, rid: str,
                 resource: dict[str, Any] | None) -> None:
    """Serve `resource` as resource_type/rid (None: no longer serve it): authored content.

    Only this resource is (re)indexed; the rest of the registry is untouched.
    """
    provider = None
    if resource is not None and resource_type == "CodeSystem" and resource.get("content") != "supplement":
        provider = make_provider(resource)
        prepare = getattr(provider, "prepare_indexes", None)
        if prepare is not None:
            prepare()
    registry.replace_resource(resource_type, rid, resource, provider)


# -- tx-resource: resources supplied with a request -------------------------------------------

_TX_MEMO: OrderedDict[str, Any] = OrderedDict()
_TX_LOCK = threading.Lock()
_TX_MEMO_SIZE = 256


# One resource of each type a request may carry (tx-resource, valueSet, codeSystem...), with
# the elements requests use, so that validating them builds every part of the models.
_MODEL_SAMPLES: tuple[dict[str, Any], ...] = (
    {"resourceType": "ValueSet", "status": "active", "compose": {
        "include": [{"system": "urn:x", "version": "1", "concept": [{"code": "a", "designation": [
            {"language": "en", "use": {"code": "d"}, "value": "A"}]}],
            "filter": [{"property": "p", "op": "=", "value": "v"}]}],
        "exclude": [{"valueSet": ["urn:y"]}]},
     "expansion": {"timestamp": "2026-01-01T00:00:00Z", "total": 1,
                   "contains": [{"system": "urn:x", "code": "a"}]}},
    {"resourceType": "CodeSystem", "status": "active", "content": "complete", "url": "urn:x",
     "property": [{"code": "p", "type": "string"}],
     "concept": [{"code": "a", "display": "A", "property": [{"code": "p", "valueString": "v"}],
                  "concept": [{"code": "b"}]}]},
    {"resourceType": "ConceptMap", "status": "active", "group": [
        {"source": "urn:x", "target": "urn:y",
         "element": [{"code": "a", "target": [{"code": "b", "equivalence": "equivalent"}]}]}]},
)


def prepare_request_models() -> None:
    """Build the fhir.resources models that validate resources sent with requests.

    Importing fhir.resources and building a model's validator takes 1-2 s the first time
    (about 0.1 ms per resource after): the production server calls this before its workers
    fork, so that no worker's first POST pays for it, after a respawn or reload either.
    """
    for sample in _MODEL_SAMPLES:
        _model_errors(sample, lenient=True)


def request_resource(resource: dict[str, Any], where: str, label: str) -> Any:
    """Validate and index a resource sent with a request, once per distinct content.

    Clients send the same supporting resources with request after request; validating and
    indexing each distinct one once keeps them off the hot path. Validation is lenient
    (missing required elements are the operation's to report). The result is a provider
    for a CodeSystem, else the resource itself; `label` names it in a 400.
    """
    digest = hashlib.sha256(orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)).hexdigest()
    with _TX_LOCK:
        if digest in _TX_MEMO:
            _TX_MEMO.move_to_end(digest)
            return _TX_MEMO[digest]
    try:
        validate_resource(resource, where, lenient=True)
    except ContentError as e:
        raise BadRequest(f"Invalid {label}: {e.path}: {e.problem}", expression=where) from e
    is_provider = resource.get("resourceType") == "CodeSystem" and resource.get("content") != "supplement"
    try:
        item = make_provider(resource) if is_provider else resource
    except CptDataError as e:  # e.g. a CPT CodeSystem without a version
        raise BadRequest(f"Invalid {label}: {e}", expression=where) from e
    with _TX_LOCK:
        _TX_MEMO[digest] = item
        while len(_TX_MEMO) > _TX_MEMO_SIZE:
            _TX_MEMO.popitem(last=False)
    return item


# Parameters that carry a resource used for this request only, and the type each must be.
INLINE_RESOURCE_PARAMS = {"valueSet": "ValueSet", "codeSystem": "CodeSystem", "conceptMap": "ConceptMap",
                          "thisValueSet": "ValueSet", "otherValueSet": "ValueSet"}


def check_inline_resource(name: str, resource: dict[str, Any]) -> None:
    """400 unless a valueSet/codeSystem/conceptMap parameter holds a valid resource of its type.

    The operations read these resources without checking element types, so an unvalidated
    `compose: "x"` would surface as a 500.
    """
    rtype = INLINE_RESOURCE_PARAMS[name]
    if resource.get("resourceType") != rtype:
        raise BadRequest(f"The parameter '{name}' must carry a {rtype}, not "
                         f"{resource.get('resourceType')!r}", expression=name)
    request_resource(resource, name, name)


def overlay_registry(base: Registry, resources: list[dict[str, Any]]) -> Registry:
    """A request-scoped registry with `resources` over `base`; base content always wins."""
    if not resources:
        return base
    overlay = base.overlay()
    for i, r in enumerate(resources):
        where = f"Parameters.parameter[tx-resource][{i}]"
        rtype = r.get("resourceType")
        if rtype == "CodeSystem" and base.has_code_system(r.get("url", "")):
            continue  # never shadow the server's own code systems
        if rtype not in RESOURCE_TYPES:
            continue  # other resource types are not terminology content; ignore them
        item = request_resource(r, where, "tx-resource")
        if isinstance(item, dict):
            add_resource(overlay, item)
        else:
            overlay.add_code_system(item)
    return overlay


def cpt_database_files(paths: Iterable[Path]) -> list[Path]:
    """The CPT databases named: files as given, folders as every *.db they hold.

    A named but missing path stops the start: a mistyped path (or a volume the operator
    forgot to mount) must never be served silently as the bundled fragment. An existing
    folder with no database (the default mount of docker-compose.yml) adds nothing.
    """
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.glob("*.db") if p.is_file()))
        elif path.is_file():
            out.append(path)
        else:
            raise ContentError(str(path), "(file)", "CPT database does not exist")
    return out


def load_content(settings: Settings) -> Registry:
    """The registry of the content folders and packages plus any CPT databases, CPT
    expressions checked with the rule set `settings.cpt_rules`, and the ConceptMaps derived
    from CPT.

    The CPT served is the operator's databases when any is configured (every version side by
    side, the newest answering requests without a version) and the bundled fragment only when
    none is: a licensed release never has a fragment of another version in front of it.

    The cyclic garbage collector pauses meanwhile: a load makes hundreds of thousands of
    objects that all live on, which its collections would only walk again and again (10-20 %
    of a load with ten CPT releases); the caller collects once after (workers.py)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _load_content(settings)
    finally:
        if enabled:
            gc.enable()


def _load_content(settings: Settings) -> Registry:
    """load_content, the garbage collector paused."""
    if settings.cpt_rules not in RULE_SETS:
        raise ContentError("settings", "cpt_rules (TX_CPT_RULES)",
                           f"{settings.cpt_rules!r} is not one of {', '.join(RULE_SETS)}")
    databases = cpt_database_files(settings.cpt_databases)
    registry = _load_files(settings.content_dirs, settings.validation_cache(), settings.packages,
                           settings.cpt_rules, without_cpt=bool(databases))
    # releases share their unchanged concepts (terminology.cpt.shared)
    with ConceptPool(databases, ChangesMemo(settings.release_changes_cache())) as pool:
        releases = [CptProvider.from_database(path, settings.cpt_rules, pool) for path in databases]
    if releases:
        # CodeSystem/cpt (the fragment's id) reads the newest release; older ones keep cpt-<version>
        max(releases, key=lambda p: version_key(p.version)).resource["id"] = "cpt"
    for cpt in releases:
        registry.add_code_system(cpt)
    newest = registry.code_system(CPT_URL)
    if isinstance(newest, CptProvider):
        # before workers fork, so that they share it; an older release builds its word
        # index when a text search first asks it (most requests use the newest)
        newest.prepare_indexes()
    _add_derived_maps(registry)
    for provider in registry.providers():
        if isinstance(provider, CptProvider):
            provider.lookup_copyright = settings.cpt_copyright
    log.info("CPT served: %s", served_releases(registry) or "none")
    return registry


def _add_derived_maps(registry: Registry) -> None:
    """Register the ConceptMaps derived from the newest CPT release served (contrast
    alternatives, DICOM modality): ordinary ConceptMaps for read, search and $translate.
    Older releases loaded beside it (code history, $diff) add none: their maps would be
    near copies, and memory is what many releases must not cost."""
    newest = registry.code_system(CPT_URL)
    if isinstance(newest, CptProvider):
        for concept_map in newest.derived_concept_maps():
            registry.add_concept_map(concept_map)
