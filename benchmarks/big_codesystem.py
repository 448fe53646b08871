"""Big code system benchmark: 100,000 generated concepts served by the real server.

    python benchmarks/big_codesystem.py [--concepts 100000] [--repeat 15] [--json FILE]

Generates a CodeSystem of N concepts (a hierarchy four levels deep, displays from a small
vocabulary, designations in English and German), starts `terminology serve` with it (the
production server, default settings, a free port), and times, as the client sees them on
loopback (median of --repeat calls after a warm-up):

* the start (first start validates the content with fhir.resources; the second one reuses
  the remembered validation) and each worker's resident memory;
* an `is-a` expansion of a 10,000-code subtree (unpaged);
* `count=0` on the whole code system (the exact total, no codes);
* a `filter=` text search returning the first 20 matches with the exact total;
* a page of 20 at offset 90,000;
* ValueSet `$validate-code` in the 10,000-code `is-a` value set.

The response cache is turned off (TX_RESPONSE_CACHE_BYTES=0) so every call is computed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

URL = "http://example.test/fhir/CodeSystem/big-benchmark"
VS_ISA = "http://example.test/fhir/ValueSet/big-benchmark-isa"
VS_ALL = "http://example.test/fhir/ValueSet/big-benchmark-all"
WORDS = ["acute", "chronic", "left", "right", "upper", "lower", "anterior", "posterior", "lateral", "medial", "proximal", "distal", "fracture", "lesion", "imaging", "study", "scan", "view", "series", "contrast", "joint", "spine", "cervical", "thoracic", "lumbar", "cranial", "abdominal", "pelvic", "renal", "hepatic", "cardiac", "pulmonary", "vascular", "neural"]
GERMAN = {"left": "links", "right": "rechts", "upper": "oben", "lower": "unten", "study": "Studie"}


def _display(rng: random.Random, i: int) -> str:
    return " ".join(rng.sample(WORDS, 3)) + f" {i}"


def generate(n: int, seed: int = 1) -> dict[str, Any]:
    """A CodeSystem of n concepts: 10 roots, 10 children each, 10 grandchildren each, the rest below."""
    rng = random.Random(seed)
    counter = iter(range(1, n + 1))
    assert n >= 20_000, "the benchmark needs at least 20,000 concepts"

    def concept(children: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        i = next(counter)
        display = _display(rng, i)
        german = " ".join(GERMAN.get(w, w) for w in display.split())
        c: dict[str, Any] = {
            "code": f"C{i:06d}", "display": display,
            "designation": [{"language": "en", "value": display.upper()},
                            {"language": "de", "value": german}],
        }
        if children:
            c["concept"] = children
        return c

    def spread(total: int, parts: int) -> list[int]:
        return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]

    # The first root's subtree holds exactly 10,000 concepts (the is-a value set).
    leaves = spread(10_000 - 111, 100) + spread(n - 10_000 - 9 * 111, 900)
    roots = []
    for r in range(10):
        level2 = []
        for a in range(10):
            level3 = [concept([concept() for _ in range(leaves[r * 100 + a * 10 + b])])
                      for b in range(10)]
            level2.append(concept(level3))
        roots.append(concept(level2))
    _renumber(roots)
    return {
        "resourceType": "CodeSystem", "id": "big-benchmark", "url": URL, "version": "1.0.0",
        "name": "BigBenchmark", "title": "Synthetic benchmark code system (generated)",
        "status": "active", "experimental": True, "caseSensitive": True,
        "hierarchyMeaning": "is-a", "content": "complete", "language": "en", "concept": roots,
    }


def _renumber(roots: list[dict[str, Any]]) -> None:
    """Codes in depth-first order, so C000001 is the first root and its subtree follows."""
    i = 0
    stack = list(reversed(roots))
    while stack:
        c = stack.pop()
        i += 1
        c["code"] = f"C{i:06d}"
        stack.extend(reversed(c.get("concept", [])))


def value_sets(root_code: str) -> list[dict[str, Any]]:
    """The is-a value set over one root and the all-codes value set."""
    return [
        {"resourceType": "ValueSet", "id": "big-benchmark-isa", "url": VS_ISA, "status": "active",
         "compose": {"include": [{"system": URL, "filter": [
             {"property": "concept", "op": "is-a", "value": root_code}]}]}},
        {"resourceType": "ValueSet", "id": "big-benchmark-all", "url": VS_ALL, "status": "active",
         "compose": {"include": [{"system": URL}]}},
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(content: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, float]:
    """Start the server on a free port; (process, base url, seconds until /readyz answered)."""
    port = free_port()
    began = time.perf_counter()
    proc = subprocess.Popen(["terminology", "serve", "--port", str(port), "--content", str(content)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    base = f"http://127.0.0.1:{port}"
    while True:
        try:
            if requests.get(f"{base}/readyz", timeout=1).status_code == 200:
                return proc, base, time.perf_counter() - began
        except requests.ConnectionError:
            pass
        if proc.poll() is not None or time.perf_counter() - began > 600:
            raise SystemExit("the server did not start")
        time.sleep(0.05)


def rss_mb(proc: subprocess.Popen[bytes]) -> list[float]:
    """Resident memory (MB) of the server process and its children."""
    out = subprocess.run(["ps", "-o", "pid=,ppid=,rss=", "-A"], capture_output=True, text=True).stdout
    rows = [tuple(int(x) for x in line.split()) for line in out.splitlines() if line.strip()]
    return [rss / 1024 for pid, ppid, rss in rows if pid == proc.pid or ppid == proc.pid]


def timed(call: Any, repeat: int) -> tuple[float, Any]:
    """Median milliseconds of `repeat` calls after one warm-up call; and the last answer."""
    answer = call()
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        answer = call()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), answer


def measure(base: str, repeat: int, isa_root: str, isa_member: str) -> dict[str, Any]:
    fhir = f"{base}/fhir"
    s = requests.Session()

    def get(path: str, **params: Any) -> dict[str, Any]:
        r = s.get(f"{fhir}/{path}", params=params, timeout=120)
        r.raise_for_status()
        return r.json()

    results: dict[str, Any] = {}
    ms, ans = timed(lambda: get("ValueSet/$expand", url=VS_ISA), repeat)
    results["is-a expansion"] = {"ms": ms, "total": ans["expansion"]["total"]}
    ms, ans = timed(lambda: get("ValueSet/$expand", url=VS_ALL, count=0), repeat)
    results["count=0 whole system"] = {"ms": ms, "total": ans["expansion"]["total"]}
    ms, ans = timed(lambda: get("ValueSet/$expand", url=VS_ALL, filter="cardiac lum", count=20), repeat)
    results["text search, first 20"] = {"ms": ms, "total": ans["expansion"]["total"],
                                        "returned": len(ans["expansion"].get("contains", []))}
    ms, ans = timed(lambda: get("ValueSet/$expand", url=VS_ALL, offset=90000, count=20, excludeNested="true"), repeat)
    results["page at offset 90,000"] = {"ms": ms, "first": ans["expansion"]["contains"][0]["code"]}
    ms, ans = timed(lambda: get("ValueSet/$validate-code", url=VS_ISA, system=URL, code=isa_member), repeat)
    result = next(p["valueBoolean"] for p in ans["parameter"] if p["name"] == "result")
    results["$validate-code in the is-a value set"] = {"ms": ms, "result": result}
    ms, ans = timed(lambda: get("CodeSystem/$lookup", system=URL, code=isa_member), repeat)
    results["$lookup"] = {"ms": ms}
    assert results["is-a expansion"]["total"] == 10000, results
    assert result is True
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concepts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        content = Path(tmp) / "content"
        content.mkdir()
        cs = generate(args.concepts)
        (content / "big.json").write_text(json.dumps(cs))
        (content / "big-valuesets.json").write_text(json.dumps(
            {"resourceType": "Bundle", "type": "collection",
             "entry": [{"resource": r} for r in value_sets(cs["concept"][0]["code"])]}))
        env = {**os.environ, "TX_CACHE_DIR": str(Path(tmp) / "cache"), "TX_RESPONSE_CACHE_BYTES": "0",
               "TX_MAX_EXPANSION_SIZE": str(args.concepts + 1), "TX_LOG_LEVEL": "warning"}
        report: dict[str, Any] = {"concepts": args.concepts, "machine": os.uname().machine,
                                  "cpus": os.cpu_count()}
        proc, base, first = start(content, env)
        proc.terminate()
        proc.wait(timeout=60)
        proc, base, second = start(content, env)
        try:
            report["first start s"] = round(first, 2)
            report["second start s (validation remembered)"] = round(second, 2)
            report["resident MB (master, workers)"] = [round(x) for x in rss_mb(proc)]
            member = cs["concept"][0]["concept"][3]["concept"][5]["concept"][7]["code"]
            report["timings"] = measure(base, args.repeat, cs["concept"][0]["code"], member)
            report["resident MB after (master, workers)"] = [round(x) for x in rss_mb(proc)]
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
