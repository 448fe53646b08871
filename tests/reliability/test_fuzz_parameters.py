"""Structure-aware fuzzing: Parameters bodies built from each operation's own parameter names,
with plausible values (known and unknown systems, codes, versions, filters, inline value sets,
tx-resources), so requests get past the parsers into the operations. Seeded, so repeatable.

Schemathesis (test_fuzz.py) shakes the HTTP surface; this reaches the engines behind it.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import orjson

from ..conftest import BODY_SITE, CPT_URL

REQUESTS = 800
CODES = ["72126", "72125", "72126-26", "72126:26", "26", "spine", "c-spine", "limb", "male", "", "*",
         "a" * 300]
SYSTEMS = [CPT_URL, BODY_SITE, "http://hl7.org/fhir/administrative-gender", "http://example.test/none",
           "", "urn:oid:1.2.3", f"{CPT_URL}|2026", f"{CPT_URL}|1999"]
VALUE_SETS = ["http://terminology.hl7.org/ValueSet/cpt-all", "http://terminology.hl7.org/ValueSet/cpt-base",
              "http://terminology.hl7.org/ValueSet/cpt-modifiers",
              "https://terminology.cpt-imaging.org/fhir/ValueSet/spine-ct",
              "http://hl7.org/fhir/ValueSet/administrative-gender", "http://example.test/vs"]
PROPERTIES = ["concept", "code", "display", "parent", "child", "inactive", "modifier", "kind", "modality",
              "status", "unknown"]
OPERATORS = ["=", "is-a", "descendent-of", "is-not-a", "regex", "in", "not-in", "generalizes", "child-of",
             "descendent-leaf", "exists", "bogus"]
BOOLEANS = {"activeOnly", "includeDesignations", "excludeNested", "abstract", "inferSystem",
            "includeDefinition", "lenient-display-validation", "valueset-membership-only", "reverse",
            "diagnostics"}
OPERATIONS = {
    "/fhir/CodeSystem/$lookup": ["system", "code", "version", "coding", "displayLanguage", "property"],
    "/fhir/CodeSystem/$validate-code": ["url", "code", "version", "display", "coding", "codeableConcept",
                                        "displayLanguage", "abstract", "activeOnly", "tx-resource"],
    "/fhir/ValueSet/$validate-code": ["url", "valueSet", "code", "system", "systemVersion", "display",
                                      "coding", "codeableConcept", "displayLanguage", "abstract",
                                      "activeOnly", "inferSystem", "tx-resource", "system-version",
                                      "check-system-version", "force-system-version",
                                      "valueset-membership-only", "lenient-display-validation"],
    "/fhir/ValueSet/$expand": ["url", "valueSet", "filter", "count", "offset", "activeOnly",
                               "includeDesignations", "includeDefinition", "displayLanguage",
                               "excludeNested", "property", "tx-resource", "system-version",
                               "check-system-version", "force-system-version",
                               "default-valueset-version"],
    "/fhir/CodeSystem/$subsumes": ["system", "codeA", "codeB", "version", "codingA", "codingB"],
    "/fhir/ConceptMap/$translate": ["url", "code", "system", "coding", "codeableConcept", "targetsystem",
                                    "reverse"],
    # each request names both sides (see Generator.request), then some of these
    "/fhir/ValueSet/$compare": ["diagnostics", "version-policy", "tx-resource"],
}


class Generator:
    """Random but plausible parameter values."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def coding(self) -> dict[str, Any]:
        fields = {"system": SYSTEMS, "code": CODES, "version": ["2026", "1.0.0", "x"],
                  "display": ["x", "Computed tomography, cervical spine; with contrast material"]}
        return {k: self.r.choice(v) for k, v in fields.items() if self.r.random() < 0.7}

    def include(self) -> dict[str, Any]:
        inc: dict[str, Any] = {}
        if self.r.random() < 0.8:
            inc["system"] = self.r.choice(SYSTEMS).split("|")[0] or CPT_URL
        if self.r.random() < 0.2:
            inc["version"] = self.r.choice(["2026", "1.0.0", "*", "x"])
        kind = self.r.random()
        if kind < 0.3:
            inc["concept"] = [{"code": self.r.choice(CODES) or "x"} for _ in range(self.r.randint(1, 3))]
        elif kind < 0.7:
            inc["filter"] = [{"property": self.r.choice(PROPERTIES), "op": self.r.choice(OPERATORS),
                              "value": self.r.choice([*CODES[:-1], "true", "CT", "72120,72126", ".*"]) or "x"}
                             for _ in range(self.r.randint(1, 2))]
        if self.r.random() < 0.2 or not inc:
            inc["valueSet"] = [self.r.choice(VALUE_SETS)]
        return inc

    def value_set(self) -> dict[str, Any]:
        compose: dict[str, Any] = {"include": [self.include() for _ in range(self.r.randint(1, 3))]}
        if self.r.random() < 0.3:
            compose["exclude"] = [self.include()]
        return {"resourceType": "ValueSet", "url": "http://example.test/vs", "status": "active",
                "compose": compose}

    def code_system(self) -> dict[str, Any]:
        return {"resourceType": "CodeSystem", "url": self.r.choice(["http://example.test/cs", CPT_URL, BODY_SITE]),
                "status": "active", "content": self.r.choice(["complete", "fragment", "not-present"]),
                "concept": [{"code": "a", "display": "A", "concept": [{"code": "b"}]}, {"code": "c"}]}

    def value(self, name: str) -> dict[str, Any]:
        r = self.r
        if name in ("count", "offset"):
            return {"valueInteger": r.choice([0, 1, 5, 50, 2**31 - 1])}
        if name in BOOLEANS:
            return {"valueBoolean": r.random() < 0.5}
        if name.startswith("coding"):
            return {"valueCoding": self.coding()}
        if name == "codeableConcept":
            return {"valueCodeableConcept": {"coding": [self.coding() for _ in range(r.randint(0, 3))]}}
        if name in ("valueSet", "thisValueSet", "otherValueSet"):
            return {"resource": self.value_set()}
        if name == "tx-resource":
            return {"resource": self.value_set() if r.random() < 0.6 else self.code_system()}
        if name.endswith("-version"):
            return {"valueUri": f"{r.choice(SYSTEMS).split('|')[0]}|{r.choice(['2026', '1.0.0', 'x', '*'])}"}
        if name in ("system", "targetsystem"):
            return {"valueUri": r.choice(SYSTEMS)}
        if name in ("thisUrl", "otherUrl"):
            return {"valueUri": r.choice(VALUE_SETS)}
        if name == "version-policy":
            return {"valueCode": r.choice(["as-needed", "always", "never", "x"])}
        if name == "url":
            return {"valueUri": r.choice(VALUE_SETS + SYSTEMS)}
        if name == "displayLanguage":
            return {"valueCode": r.choice(["en", "de", "*", "en-US;q=0.5", "x-y-z", "fr-CA,en"])}
        if name == "property":
            return {"valueCode": r.choice(["parent", "child", "display", "*", "designation", "modifier"])}
        if name == "filter":
            return {"valueString": r.choice(["spine", "CT", "a b", "%", "(", "*"])}
        return {"valueCode": r.choice(CODES)}

    def request(self) -> tuple[str, bytes]:
        path = self.r.choice(sorted(OPERATIONS))
        names = OPERATIONS[path]
        params = [{"name": n, **self.value(n)} for n in self.r.sample(names, self.r.randint(1, min(6, len(names))))]
        if path.endswith("$compare"):
            sides = [self.r.choice([f"{side}Url", f"{side}ValueSet"]) for side in ("this", "other")]
            params = [{"name": n, **self.value(n)} for n in sides] + params
        return path, orjson.dumps({"resourceType": "Parameters", "parameter": params})


def test_structured_fuzzing_never_gets_a_server_error(client: Any) -> None:
    gen = Generator(seed=8190)
    statuses: Counter[int] = Counter()
    for _ in range(REQUESTS):
        path, body = gen.request()
        resp = client.post(path, data=body, content_type="application/fhir+json")
        statuses[resp.status_code] += 1
        assert resp.status_code < 500, (path, body[:800], resp.get_data(as_text=True)[:300])
        assert resp.mimetype == "application/fhir+json"
        answer = resp.get_json()
        if resp.status_code >= 400:
            assert answer["resourceType"] == "OperationOutcome"
            assert answer["issue"][0]["details"]["text"]
        else:
            assert answer["resourceType"] in ("Parameters", "ValueSet")
    # the requests reach the operations: plenty of real answers, not only parser errors
    assert statuses[200] > REQUESTS // 5, statuses
