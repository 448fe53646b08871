"""FHIR XML <-> the JSON-shaped dicts the operations take and return (FHIR R4 XML rules).

The converter is driven by the FHIR definitions, not by lists per resource: the R4B model
classes of fhir.resources (wire-compatible with R4 for the resources served here) give each
type's elements in definition order (`elements_sequence()`) and their types (the model
fields). A table per type is built from them the first time XML is asked for, so the JSON
path never touches this module.

The rules followed (https://hl7.org/fhir/R4/xml.html):
- every element is in the namespace http://hl7.org/fhir; the root is the resource type;
- elements appear in definition order; a repeating element repeats its tag;
- a primitive's value is its `value` attribute, its id and extensions (JSON `_name`) are an
  `id` attribute and `extension` children; arrays of primitives pair up with `_name` arrays
  where either side may be null;
- `id` of a datatype or backbone element, and `url` of an Extension, are attributes;
- a choice element is named with its type (valueCoding);
- a resource inside another (contained, Bundle.entry.resource, Parameters.parameter.resource)
  sits in a wrapper element named for the field, then an element named for its type;
- the narrative's div is XHTML in the namespace http://www.w3.org/1999/xhtml.

Parsing never expands entities, loads a DTD or touches the network; a document with a
DOCTYPE is refused (FHIR XML has none), so XXE and entity-expansion bodies are a 400.
"""

from __future__ import annotations

import re
import threading
import types
import typing
from dataclasses import dataclass
from typing import Any

from lxml import etree

from terminology.errors import BadRequest

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
_F = "{" + FHIR_NS + "}"
_X = "{" + XHTML_NS + "}"
# JSON types of the FHIR primitives that are not strings in JSON.
_NUMERIC_INT = frozenset({"integer", "positiveInt", "unsignedInt", "integer64"})
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"[-+]?[0-9]+")
MAX_DEPTH = 200  # nesting deeper than this is refused rather than recursed into


class XmlError(BadRequest):
    """A request body that is not FHIR XML this server can read (400)."""


@dataclass(frozen=True)
class Field:
    """One element of a FHIR type: how it is written and read."""

    name: str
    index: int  # position in definition order
    kind: str  # "primitive", "complex", "resource" or "xhtml"
    many: bool
    ptype: str = ""  # the FHIR primitive type (boolean, integer, string...)
    model: type | None = None  # the model class of a complex element
    attribute: bool = False  # Element.id and Extension.url are XML attributes


Table = dict[str, Field]
_tables: dict[type, Table] = {}
_lock = threading.Lock()
_resource_base: type | None = None


def _resource_class() -> type:
    global _resource_base
    if _resource_base is None:
        from fhir.resources.R4B.resource import Resource

        _resource_base = Resource
    return _resource_base


def resource_model(resource_type: str) -> type | None:
    """The R4B model class of a resource type, or None when it is not a resource."""
    from fhir.resources.R4B import get_fhir_model_class

    try:
        klass = get_fhir_model_class(resource_type)
    except (KeyError, ValueError, AttributeError, ImportError):
        return None
    return klass if issubclass(klass, _resource_class()) else None


def _primitive_name(meta: object) -> str:
    """'positiveInt' from the fhir_core PositiveInt() annotation, and so on."""
    name = type(meta).__name__
    return name[0].lower() + name[1:]


def _field(name: str, index: int, annotation: Any, owner: type) -> Field:
    """The Field of a model attribute from its type annotation."""
    many = False
    inner = annotation
    while True:
        origin = typing.get_origin(inner)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(inner) if a is not type(None)]
            inner = args[0]
        elif origin in (list, typing.List):  # noqa: UP006 - the models use typing.List
            many = True
            inner = typing.get_args(inner)[0]
        else:
            break
    attribute = (name == "id" and not issubclass(owner, _resource_class())) or (
        name == "url" and owner.__name__ == "Extension")
    if inner is bool:
        return Field(name, index, "primitive", many, "boolean", attribute=attribute)
    if typing.get_origin(inner) is typing.Annotated:
        ptype = _primitive_name(inner.__metadata__[0])
        kind = "xhtml" if ptype == "xhtml" else "primitive"
        return Field(name, index, kind, many, ptype, attribute=attribute)
    getter = getattr(inner, "get_model_klass", None)
    if getter is None:
        raise TypeError(f"{owner.__name__}.{name}: unexpected type {inner!r}")
    model = getter()
    if model is _resource_class() or issubclass(model, _resource_class()):
        return Field(name, index, "resource", many)
    return Field(name, index, "complex", many, model=model)


def table(model: type) -> Table:
    """The elements of a model class by JSON name, in definition order (built once)."""
    found = _tables.get(model)
    if found is not None:
        return found
    with _lock:
        fields = model.model_fields  # type: ignore[attr-defined]
        order = model.elements_sequence()  # type: ignore[attr-defined]
        built = {name: _field(name, i, fields[name].annotation, model)
                 for i, name in enumerate(order) if name in fields}
        _tables[model] = built
    return built


# ---------------------------------------------------------------- writing
# Written as escaped text rather than through an lxml tree (about a third cheaper), with
# characters XML cannot carry replaced by U+FFFD instead of failing the answer.

_ATTR_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                               "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})
# Characters XML 1.0 cannot carry at all; a client's string echoed in a message may hold them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _attr(value: str) -> str:
    if _NOT_XML.search(value):
        value = _NOT_XML.sub("\ufffd", value)
    return value.translate(_ATTR_ESCAPES)


def to_xml(resource: dict[str, Any]) -> bytes:
    """A resource dict as a FHIR XML document (UTF-8, with an XML declaration)."""
    out: list[str] = ["<?xml version='1.0' encoding='UTF-8'?>\n"]
    _write_resource(out, resource, str(resource.get("resourceType", "")), root=True)
    return "".join(out).encode("utf-8")


def _write_resource(out: list[str], res: dict[str, Any], path: str, root: bool = False) -> None:
    rtype = res.get("resourceType")
    model = resource_model(rtype) if isinstance(rtype, str) else None
    if model is None:
        raise ValueError(f"{path}: not a FHIR resource (resourceType {rtype!r})")
    _write_element(out, str(rtype), res, table(model), str(rtype),
                   f' xmlns="{FHIR_NS}"' if root else "")


def _write_element(out: list[str], tag: str, obj: dict[str, Any], fields: Table, path: str,
                   extra: str = "") -> None:
    """<tag attributes>children</tag> for a complex value or resource."""
    names: set[str] = set()
    for key in obj:
        if key in ("resourceType", "fhir_comments"):
            continue
        name = key[1:] if key.startswith("_") else key
        if name not in fields:
            raise ValueError(f"{path}.{name}: no such element in FHIR R4")
        names.add(name)
    ordered = sorted(names, key=lambda n: fields[n].index) if len(names) > 1 else list(names)
    attrs = "".join(f' {n}="{_attr(_text(obj[n]))}"' for n in ordered
                    if fields[n].attribute and obj.get(n) is not None)
    opened = len(out)
    out.append(f"<{tag}{extra}{attrs}>")
    for name in ordered:
        f = fields[name]
        if f.attribute:
            continue
        value = obj.get(name)
        where = f"{path}.{name}"
        if f.kind == "primitive":
            _write_primitives(out, f, value, obj.get("_" + name), where)
            continue
        for item in (value if isinstance(value, list) else [value]):
            if item is None:
                continue
            if f.kind == "complex":
                assert f.model is not None
                _write_element(out, name, item, table(f.model), where)
            elif f.kind == "resource":
                out.append(f"<{name}>")
                _write_resource(out, item, where)
                out.append(f"</{name}>")
            else:
                out.append(_xhtml(item, where))
    if len(out) == opened + 1:
        out[opened] = f"<{tag}{extra}{attrs}/>"
    else:
        out.append(f"</{tag}>")


def _write_primitives(out: list[str], f: Field, value: Any, ext: Any, path: str) -> None:
    values = value if isinstance(value, list) else [value]
    exts = ext if isinstance(ext, list) else [ext]
    for i in range(max(len(values), len(exts))):
        v = values[i] if i < len(values) else None
        e = exts[i] if i < len(exts) else None
        if v is None and not e:
            continue
        attrs = ""
        if e and e.get("id") is not None:
            attrs = f' id="{_attr(str(e["id"]))}"'
        if v is not None:
            attrs += f' value="{_attr(_text(v))}"'
        extensions = e.get("extension", []) if e else []
        if not extensions:
            out.append(f"<{f.name}{attrs}/>")
            continue
        out.append(f"<{f.name}{attrs}>")
        for x in extensions:
            _write_element(out, "extension", x, _extension_table(), f"{path}.extension")
        out.append(f"</{f.name}>")


def _extension_table() -> Table:
    from fhir.resources.R4B.extension import Extension

    return table(Extension)


def _text(value: Any) -> str:
    """A JSON primitive as its XML value attribute."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _xhtml(div: str, path: str) -> str:
    """The narrative div, checked to be well-formed XHTML, as text with its namespace."""
    try:
        el = etree.fromstring(div.encode("utf-8"), _parser())
    except etree.XMLSyntaxError as e:
        raise ValueError(f"{path}: the narrative is not well-formed XHTML: {e}") from e
    if el.tag != _X + "div":
        raise ValueError(f"{path}: the narrative must be an XHTML div")
    return etree.tostring(el, encoding="unicode", with_tail=False)

# ---------------------------------------------------------------- reading


def _parser() -> Any:
    # No entity expansion, no DTD, no network, no huge trees: XXE and billion laughs are
    # refused by the parser or by the DOCTYPE check below.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False, remove_comments=True,
                           remove_pis=True)


def from_xml(raw: bytes) -> dict[str, Any]:
    """A FHIR XML document as a resource dict; XmlError (400) for anything else."""
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise XmlError("XML with a DOCTYPE or entity declarations is not accepted (FHIR XML has none)")
    try:
        root = etree.fromstring(raw, _parser())
    except etree.XMLSyntaxError as e:
        raise XmlError(f"The request body is not well-formed XML: {e}") from None
    if root.getroottree().docinfo.doctype:
        raise XmlError("XML with a DOCTYPE is not accepted (FHIR XML has none)")
    return _read_resource(root, "", 0)


def _local(el: Any, path: str) -> str:
    tag = el.tag
    if not isinstance(tag, str):
        raise XmlError(f"{path}: entity references are not accepted", expression=path or None)
    if not tag.startswith(_F):
        raise XmlError(f"{path or 'root'}: element {tag} is not in the FHIR namespace {FHIR_NS}",
                       expression=path or None)
    return tag[len(_F):]


def _read_resource(el: Any, path: str, depth: int) -> dict[str, Any]:
    rtype = _local(el, path)
    model = resource_model(rtype)
    if model is None:
        raise XmlError(f"{path or 'root'}: '{rtype}' is not a FHIR resource type",
                       expression=path or None)
    out: dict[str, Any] = {"resourceType": rtype}
    _read_fields(el, out, table(model), rtype, depth)
    return out


def _read_fields(el: Any, out: dict[str, Any], fields: Table, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise XmlError(f"{path}: nested deeper than {MAX_DEPTH} levels", expression=path)
    for attr, value in el.attrib.items():
        f = fields.get(attr)
        if f is None or not f.attribute:
            raise XmlError(f"{path}: unexpected attribute '{attr}'", expression=path)
        out[attr] = value
    _no_text(el.text, path)
    values: dict[str, list[Any]] = {}
    exts: dict[str, list[Any]] = {}
    for child in el:
        _no_text(child.tail, path)
        if child.tag == _X + "div" and "div" in fields and fields["div"].kind == "xhtml":
            out["div"] = etree.tostring(child, encoding="unicode", with_tail=False)
            continue
        name = _local(child, path)
        where = f"{path}.{name}"
        f = fields.get(name)
        if f is None or f.attribute:
            raise XmlError(f"{where}: unknown element '{name}'", expression=where)
        if f.kind == "primitive":
            v, e = _read_primitive(child, f, where, depth)
            values.setdefault(name, []).append(v)
            exts.setdefault(name, []).append(e)
            continue
        if f.kind == "complex":
            assert f.model is not None
            item: dict[str, Any] = {}
            _read_fields(child, item, table(f.model), where, depth + 1)
        elif f.kind == "resource":
            item = _read_wrapped(child, where, depth + 1)
        else:
            raise XmlError(f"{where}: the narrative must be an XHTML div", expression=where)
        values.setdefault(name, []).append(item)
    for name, items in values.items():
        f = fields[name]
        if not f.many and len(items) > 1:
            raise XmlError(f"{path}.{name}: repeats but is not a repeating element",
                           expression=f"{path}.{name}")
        ext = exts.get(name, [])
        if f.kind != "primitive":
            out[name] = items if f.many else items[0]
            continue
        if any(v is not None for v in items):
            out[name] = items if f.many else items[0]
        if any(e is not None for e in ext):
            out["_" + name] = ext if f.many else ext[0]


def _read_primitive(el: Any, f: Field, path: str, depth: int) -> tuple[Any, Any]:
    """A primitive element's JSON value and its `_name` object (either may be None)."""
    _no_text(el.text, path)
    ext: dict[str, Any] = {}
    for attr, v in el.attrib.items():
        if attr == "id":
            ext["id"] = v
        elif attr != "value":
            raise XmlError(f"{path}: unexpected attribute '{attr}'", expression=path)
    extensions = []
    for child in el:
        _no_text(child.tail, path)
        if _local(child, path) != "extension":
            raise XmlError(f"{path}: a primitive may only hold extensions", expression=path)
        item: dict[str, Any] = {}
        _read_fields(child, item, _extension_table(), f"{path}.extension", depth + 1)
        extensions.append(item)
    if extensions:
        ext["extension"] = extensions
    raw = el.get("value")
    value = None if raw is None else _json_value(raw, f.ptype, path)
    if value is None and not ext:
        raise XmlError(f"{path}: a primitive element needs a value or extensions", expression=path)
    return value, (ext or None)


def _json_value(raw: str, ptype: str, path: str) -> Any:
    """An XML value attribute as the JSON value of its FHIR primitive type."""
    if ptype == "boolean":
        if raw not in ("true", "false"):
            raise XmlError(f"{path}: '{raw}' is not a boolean (true or false)", expression=path)
        return raw == "true"
    if ptype in _NUMERIC_INT:
        if not _INTEGER.fullmatch(raw):
            raise XmlError(f"{path}: '{raw}' is not an integer", expression=path)
        return int(raw)
    if ptype == "decimal":
        if not _DECIMAL.fullmatch(raw):
            raise XmlError(f"{path}: '{raw}' is not a decimal", expression=path)
        return int(raw) if _INTEGER.fullmatch(raw) else float(raw)
    return raw


def _read_wrapped(el: Any, path: str, depth: int) -> dict[str, Any]:
    """The one resource inside a wrapper element (contained, resource)."""
    _no_text(el.text, path)
    if el.attrib:
        raise XmlError(f"{path}: a resource wrapper takes no attributes", expression=path)
    children = list(el)
    if len(children) != 1:
        raise XmlError(f"{path}: must hold exactly one resource", expression=path)
    _no_text(children[0].tail, path)
    return _read_resource(children[0], path, depth)


def _no_text(text: str | None, path: str) -> None:
    if text is not None and text.strip():
        raise XmlError(f"{path or 'root'}: unexpected text content '{text.strip()[:40]}'",
                       expression=path or None)
