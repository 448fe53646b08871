"""Licensed text (AMA CPT descriptors): counted once per answer, on every path.

A provider whose text is licensed offers `licensed_texts()`: every descriptor string it may
hand out (display, designations, definitions). The RESOURCE stage `licensed_text` walks each
answer's resource dict once and counts the distinct descriptor strings it carries: a string
that is one, or a message that quotes one ('...'). An answer is everything one request
returns: a batch Bundle's entries and an HTML page's operation calls add up on the request's
Exchange (`x.cpt_shown`). The bound is `max_cpt_expansion` distinct descriptors per answer.

Past the bound, the choice depends on what the answer is:
- an expansion (a ValueSet with `expansion`) is `too-costly`, as `$expand` past the cap has
  always been: an expansion without displays would look complete and be silently poorer, and
  a client paging or filtering gets what it needs in smaller requests;
- everything else (`$validate-code` and its batch form, `$lookup`, reads, write warnings, the
  pages) keeps its result and loses the descriptors past the bound: a validation's `result`
  and its issues' codes stay right, and a message says the display is wrong without quoting
  the valid one. Refusing would hide a correct answer the caller is entitled to.

With `cpt_text_requires_token` (TX_CPT_TEXT_REQUIRES_TOKEN) a caller without a token with a
read scope may see no descriptor at all: the bound is 0, and expansions list codes without
displays (the caller asked for codes, and gets every one).

Cost: an answer with no licensed text costs one walk of its dict with one set lookup per
string; nothing is copied. Only an answer past the bound is copied and rewritten. The one
answer of a request that has no other (the thin dispatch's operation GETs: `x.one_answer`)
is not walked when its serialized bytes cannot hold more descriptors than the bound leaves
room for (`at_most`): nothing could be withheld, and no later answer of the request adds to
its count. That is every `$lookup` and `$validate-code` of a licensed caller; the walk was
a fifth of their CPU (benchmarks/README.md, issue 28).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import orjson

from terminology.errors import FhirError, TooCostly
from terminology.http.authoring.auth import reads_something
from terminology.http.exchange import Early, Exchange

if TYPE_CHECKING:
    from terminology.registry import Registry

WITHHELD = "[CPT descriptor not shown]"


class Texts(frozenset[str]):
    """The licensed descriptors of some content, and the lengths of the longest and shortest."""

    longest = 0
    shortest = 1


_texts: weakref.WeakKeyDictionary[Any, Texts] = weakref.WeakKeyDictionary()
_EMPTY = Texts()


def licensed_texts(registry: Registry | None) -> Texts:
    """Every licensed descriptor the content of `registry` may hand out (kept per content)."""
    if registry is None:
        return _EMPTY
    root = registry
    while root.parent is not None:
        root = root.parent
    found = _texts.get(root)
    if found is None:
        texts: set[str] = set()
        for provider in root.providers():
            if hasattr(provider, "licensed_texts"):
                texts.update(provider.licensed_texts())
        found = Texts(texts) if texts else _EMPTY
        found.longest = max(map(len, found), default=0)
        found.shortest = max(min(map(len, found), default=1), 1)
        _texts[root] = found
    return found


def _quoted(text: str, texts: Texts) -> Iterator[str]:
    """The descriptors a message quotes between apostrophes (a descriptor may hold one).
    Only quote pairs at most the longest descriptor apart are tried: linear in the message."""
    marks = []
    at = text.find("'")
    while at >= 0:
        marks.append(at)
        at = text.find("'", at + 1)
    for a, start in enumerate(marks):
        for end in marks[a + 1:]:
            if end - start - 1 > texts.longest:
                break
            inner = text[start + 1:end]
            if inner in texts:
                yield inner


def at_most(data: bytes, texts: Texts) -> int:
    """An upper bound on the distinct descriptors the serialized answer `data` carries, in
    two C-speed passes over the bytes. The walk counts a descriptor that is a whole string
    value, which takes at least `shortest` + 2 bytes of JSON (UTF-8 and escapes only add), no
    two values sharing bytes; or one that a message quotes, at most one per pair of its
    apostrophes. A client's text full of apostrophes only makes the bound large, and the
    answer is walked."""
    quotes = data.count(b"'")
    return len(data) // (texts.shortest + 2) + quotes * (quotes - 1) // 2


def _strings(node: Any, texts: Texts, out: dict[str, None]) -> None:
    """Add the descriptors `node` carries to `out`, distinct. Iterative, and the hot path of
    every answer: one type test per value, one set lookup per string."""
    stack = [node]
    pop, push = stack.pop, stack.append
    while stack:
        item = pop()
        for v in (item.values() if type(item) is dict else item):
            kind = type(v)
            if kind is str:
                if v in texts:
                    out[v] = None
                elif "'" in v:
                    for q in _quoted(v, texts):
                        out[q] = None
            elif kind is dict or kind is list:
                push(v)


def _in_order(node: Any, texts: Texts) -> list[str]:
    """The descriptors `node` carries, distinct, in document order (past the bound only: the
    first ones of an answer are those it keeps)."""
    out: dict[str, None] = {}

    def visit(item: Any) -> None:
        for v in (item.values() if isinstance(item, dict) else item):
            if isinstance(v, str):
                if v in texts:
                    out[v] = None
                elif "'" in v:
                    out.update(dict.fromkeys(_quoted(v, texts)))
            elif isinstance(v, (dict, list)):
                visit(v)

    visit(node)
    return list(out)


def _scrub(node: Any, hidden: Texts) -> Any:
    """`node` without the descriptors in `hidden`: a parameter or designation whose value is
    one is dropped, a display or definition loses its key, a message loses the quote."""
    if isinstance(node, list):
        out = []
        for v in node:
            if isinstance(v, dict) and any(type(x) is str and x in hidden
                                           for k, x in v.items() if k.startswith("value")):
                continue  # a Parameters parameter or a designation carrying the text
            if type(v) is str and v in hidden:
                continue
            out.append(_scrub(v, hidden))
        return out
    if isinstance(node, dict):
        scrubbed = {}
        for k, v in node.items():
            if type(v) is str:
                if v in hidden:
                    continue
                if "'" in v:
                    for q in set(_quoted(v, hidden)):
                        v = v.replace(f"'{q}'", WITHHELD)
            scrubbed[k] = _scrub(v, hidden) if isinstance(v, (dict, list)) else v
        return scrubbed
    return node


def _bound(x: Exchange) -> int:
    """How many distinct descriptors this request may see in all."""
    return x.site.settings.max_cpt_expansion if x.licensed else 0


def _screen_one(x: Exchange, body: dict[str, Any], texts: Texts) -> dict[str, Any]:
    """One resource against the request's running count: as is, or scrubbed; TooCostly for an
    expansion past the bound (each path answers it as its error, with its status)."""
    found: dict[str, None] = {}
    _strings(body, texts, found)
    if not found:
        return body
    shown = x.cpt_shown
    new = [t for t in found if t not in shown]
    room = _bound(x) - len(shown)
    if len(new) <= room:
        shown.update(new)
        return body
    if x.licensed and body.get("resourceType") == "ValueSet" and "expansion" in body:
        raise TooCostly(
            f"This answer would carry more than {_bound(x)} distinct CPT descriptors, the licensed "
            "text this server hands out in one answer (setting max_cpt_expansion); ask for a "
            "smaller expansion", expression="expansion")
    ordered = [t for t in _in_order(body, texts) if t not in shown]
    keep = ordered[:max(room, 0)]
    shown.update(keep)
    hidden = Texts(ordered[len(keep):])
    hidden.longest = texts.longest
    copied = orjson.loads(orjson.dumps(body))  # never rewrite shared content in place
    return dict(_scrub(copied, hidden))


def licensed_text(x: Exchange, body: dict[str, Any]) -> dict[str, Any]:
    """Stage (RESOURCE): at most max_cpt_expansion distinct CPT descriptors per answer, and
    none for a caller without a read token under cpt_text_requires_token (module docstring)."""
    texts = licensed_texts(x.registry)
    if not texts:
        return body
    if x.one_answer and x.licensed and at_most(x.json(body), texts) <= _bound(x) - len(x.cpt_shown):
        return body  # nothing can be past the bound, and nothing else adds to the count
    if body.get("resourceType") == "Bundle" and body.get("type") == "batch-response":
        for entry in body.get("entry", []):  # the batch is this request's own: changed in place
            resource = entry.get("resource")
            if isinstance(resource, dict):
                try:
                    entry["resource"] = _screen_one(x, resource, texts)
                except FhirError as e:  # this entry is refused; the others keep their answers
                    entry["resource"], entry["response"] = e.outcome(), {"status": _status(e.status)}
        return body
    return _screen_one(x, body, texts)


def _status(code: int) -> str:
    return f"{code} {HTTPStatus(code).phrase}"


def licensed_reader(x: Exchange) -> Early | None:
    """Stage (setting cpt_text_requires_token): whether the caller may read CPT text: a token
    with a read scope. No token: codes and results only. A token that is not valid: 401."""
    header = x.environ.get("HTTP_AUTHORIZATION")
    if not header:
        x.licensed = False
        return None
    authorizer = x.site.authorizer
    who = authorizer.authenticate(header)
    x.who = who.who
    x.licensed = reads_something(who)
    return None


def withheld(x: Exchange | None, texts: list[str]) -> set[str]:
    """For content a page shows outside an operation call: which of `texts` it may not show
    (counted on the same request total as the operation answers)."""
    if x is None:
        return set()
    known = licensed_texts(x.registry)
    found = [t for t in dict.fromkeys(texts) if t in known and t not in x.cpt_shown]
    room = max(_bound(x) - len(x.cpt_shown), 0)
    x.cpt_shown.update(found[:room])
    return set(found[room:])
