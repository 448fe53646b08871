"""Deep nesting in every place a client can nest: answered at the limit (64 levels of JSON),
a 400 naming the limit past it, at any depth (100,000 too), and never a dead worker.

Bodies are written as text (orjson itself writes no document deeper than 1024), each exactly
as deep as the case says; the depth is counted on the text, independently of the server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from terminology.http.fhir.body import json_depth_exceeds
from terminology.settings import Settings

from ..conftest import CPT_URL
from .conftest import DISPLAY_72126, FHIR_JSON, Answer, check_outcome, lookup_72126_is_intact, send

LIMIT = Settings().max_json_depth
DEPTHS = (64, 65, 100, 1_000, 100_000)
CPT_ALL = "http://terminology.hl7.org/ValueSet/cpt-all"
NEST_CS = "http://example.test/CodeSystem/nest"
CPT_INCLUDE = f'"compose":{{"include":[{{"system":"{CPT_URL}","concept":[{{"code":"72126"}}]}}]}}'


def text_depth(body: str) -> int:
    """How deep objects and arrays nest in `body` (our bodies hold no brackets in strings)."""
    depth = deepest = 0
    for ch in body:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


@dataclass(frozen=True)
class Place:
    """A place a client nests: the operation, the body around the nesting, one level of it
    (opening text for level i, and its closing), leaves of different depths, the answer."""

    name: str
    path: str
    head: str
    level: Callable[[int], str]
    close: str
    leaves: tuple[str, ...]
    tail: str
    check: Callable[[Answer], None]

    def body(self, levels: int, leaf: str) -> str:
        return (self.head + "".join(self.level(i) for i in range(levels)) + leaf
                + self.close * levels + self.tail)

    def exactly(self, depth: int) -> str:
        """A body nesting exactly `depth` levels."""
        for leaf in self.leaves:
            # linear in the levels once the nesting is the deepest part of the body
            step = text_depth(self.body(11, leaf)) - text_depth(self.body(10, leaf))
            base = text_depth(self.body(10, leaf)) - 10 * step
            if depth >= base + 10 * step and (depth - base) % step == 0:
                body = self.body((depth - base) // step, leaf)
                assert text_depth(body) == depth
                return body
        raise AssertionError(f"no body {depth} deep for {self.name}")


def params(*parts: str) -> str:
    return '{"resourceType":"Parameters","parameter":[' + ",".join(parts)


def extension_level(i: int) -> str:
    return f'{{"url":"http://example.test/ext{i}","extension":['


EXTENSION_LEAVES = ('{"url":"http://example.test/leaf","valueString":"x"}',
                    '{"url":"http://example.test/leaf","valueCoding":{"system":"http://example.test","code":"x"}}')


def looked_up(display: str) -> Callable[[Answer], None]:
    def check(answer: Answer) -> None:
        assert answer.status == 200, answer.body[:300]
        got = [p.get("valueString") for p in answer.json()["parameter"] if p["name"] == "display"]
        assert got == [display]
    return check


def expanded_72126(answer: Answer) -> None:
    assert answer.status == 200, answer.body[:300]
    assert [c["code"] for c in answer.json()["expansion"]["contains"]] == ["72126"]


def valid(answer: Answer) -> None:
    assert answer.status == 200, answer.body[:300]
    assert {"name": "result", "valueBoolean": True} in answer.json()["parameter"]


PLACES = [
    Place("tx-resource concepts", "/CodeSystem/$lookup",
          params(f'{{"name":"system","valueUri":"{NEST_CS}"}}', '{"name":"code","valueCode":"leaf"}',
                 f'{{"name":"tx-resource","resource":{{"resourceType":"CodeSystem","url":"{NEST_CS}",'
                 '"status":"active","content":"complete","concept":['),
          lambda i: f'{{"code":"n{i}","display":"Level {i}","concept":[', "]}",
          ('{"code":"leaf","display":"Leaf"}',
           '{"code":"leaf","display":"Leaf","designation":[{"value":"Blatt","use":{"code":"x"}}]}'),
          "]}}]}", looked_up("Leaf")),
    Place("extensions", "/ValueSet/$expand",
          params('{"name":"valueSet","resource":{"resourceType":"ValueSet",'
                 f'"url":"http://example.test/ValueSet/nest","status":"active",{CPT_INCLUDE},"extension":['),
          extension_level, "]}", EXTENSION_LEAVES, "]}}]}", expanded_72126),
    Place("Parameters part", "/CodeSystem/$lookup",
          params(f'{{"name":"system","valueUri":"{CPT_URL}"}}', '{"name":"code","valueCode":"72126"}',
                 '{"name":"nest","part":['),
          lambda i: f'{{"name":"p{i}","part":[', "]}",
          ('{"name":"leaf","valueString":"x"}', '{"name":"leaf","valueCoding":{"code":"x"}}'),
          "]}]}", looked_up(DISPLAY_72126)),
    Place("compose (contained value sets importing each other)", "/ValueSet/$expand",
          params('{"name":"valueSet","resource":{"resourceType":"ValueSet","url":"http://example.test/ValueSet/nest",'
                 '"status":"active","compose":{"include":[{"valueSet":["#c0"]}]},"contained":['),
          lambda i: (f'{{"resourceType":"ValueSet","id":"c{i}","url":"http://example.test/c{i}","status":"active",'
                     f'"compose":{{"include":[{{"valueSet":["#c{i + 1}"]}}]}},"contained":['),
          "]}",
          ('{"resourceType":"ValueSet","id":"cLEAF","status":"active",' + CPT_INCLUDE + "}",
           '{"resourceType":"ValueSet","id":"cLEAF","status":"active","compose":{"include":[{"system":"'
           + CPT_URL + '","concept":[{"code":"72126","designation":[{"value":"x","use":{"code":"x"}}]}]}]}}'),
          "]}}]}", expanded_72126),
    Place("CodeableConcept", "/ValueSet/$validate-code",
          params(f'{{"name":"url","valueUri":"{CPT_ALL}"}}',
                 f'{{"name":"codeableConcept","valueCodeableConcept":{{"coding":[{{"system":"{CPT_URL}",'
                 '"code":"72126","extension":['),
          extension_level, "]}", EXTENSION_LEAVES, "]}]}}]}", valid),
]


def leaf_id_fixed(place: Place, body: str) -> str:
    """The compose place names its innermost value set by the level count."""
    if "cLEAF" not in body:
        return body
    levels = body.count('"contained":[') - 1  # the root value set holds one too
    return body.replace("cLEAF", f"c{levels}")


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("place", PLACES, ids=[p.name for p in PLACES])
def test_nesting_is_answered_up_to_the_limit_and_refused_past_it(
        live_server: str, place: Place, depth: int) -> None:
    body = leaf_id_fixed(place, place.exactly(depth))
    answer = send(live_server, "POST", place.path, data=body.encode(),
                  headers={"Content-Type": FHIR_JSON})
    if depth <= LIMIT:
        place.check(answer)
    else:
        check_outcome(answer, 400, f"more than {LIMIT} levels deep")


def test_the_server_still_answers_after_the_deep_bodies(live_server: str) -> None:
    for place in PLACES:
        answer = send(live_server, "POST", place.path, data=place.exactly(100_000).encode(),
                      headers={"Content-Type": FHIR_JSON})
        check_outcome(answer, 400, "max_json_depth")
    lookup_72126_is_intact(live_server)


def import_chain(length: int) -> bytes:
    """A $expand of the first of `length` tx-resource value sets, each importing the next."""
    sets = [f'{{"name":"tx-resource","resource":{{"resourceType":"ValueSet","url":"http://example.test/vs{i}",'
            f'"status":"active","compose":{{"include":[{{"valueSet":["http://example.test/vs{i + 1}"]}}]}}}}}}'
            for i in range(length - 1)]
    sets.append(f'{{"name":"tx-resource","resource":{{"resourceType":"ValueSet",'
                f'"url":"http://example.test/vs{length - 1}","status":"active",{CPT_INCLUDE}}}}}')
    return (params('{"name":"url","valueUri":"http://example.test/vs0"}', *sets) + "]}").encode()


@pytest.mark.parametrize("length", (64, 65, 100, 1_000))
def test_value_sets_importing_value_sets_stop_at_the_limit(live_server: str, length: int) -> None:
    answer = send(live_server, "POST", "/ValueSet/$expand", data=import_chain(length),
                  headers={"Content-Type": FHIR_JSON})
    if length <= LIMIT:
        expanded_72126(answer)
    else:
        check_outcome(answer, 400, f"more than {LIMIT} value sets deep")


def test_depth_check_walks_100000_levels_without_recursion() -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    assert json_depth_exceeds(deep, 100_000) is True  # 100,001 levels: the list of lists, and []
    assert json_depth_exceeds(deep, 100_001) is False
    assert json_depth_exceeds({"a": [1, {"b": {}}]}, 4) is False
    assert json_depth_exceeds({"a": [1, {"b": {}}]}, 3) is True
    assert json_depth_exceeds("text", 0) is False
