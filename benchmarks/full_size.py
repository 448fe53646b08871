"""Full-size CPT benchmark: random codes, text searches, counts and membership over a release.

    python benchmarks/full_size.py --cpt DB [--duration 5] [--rounds 2] [--json FILE]

Starts `terminology serve --cpt DB` twice (response cache off, then on, as load.py does) and
drives it with wrk, each request drawn at random from a list (a Lua script picks one path per
request): random codes of the release for `$lookup`, CodeSystem `$validate-code` (with the
code's display) and ValueSet `$validate-code` (base codes in the all-base-codes value set, a
`modifier = false` filter; any code in a facet filter value set), text searches of all CPT
with random word prefixes (count=20, exact total), `count=0` of all CPT and of a facet
filter. With the cache on: the same random codes, and a skewed (Zipf, s = 1) mix whose cache
hit ratio is read from the server's access log. Each figure is the median over the rounds,
with its ratio to the raw floor of the same round: a trivial WSGI app returning a fixed
small Parameters under granian with the same settings (raw_floor.py, its own server run at
the same time); `/healthz` (Flask) is reported too. `$lookup` is also run at 16 connections
(p99). It also measures the first `count=0` answers and the first POSTs of an inline value
set (count=0 over all CPT) of a fresh server, one CodeableConcept of 30,000 codings and one compose
of 10,000 single-code includes, the time from start to `/readyz` and each process's memory.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import (  # noqa: E402  (the sibling script's server and wrk helpers)
    free_port,
    machine,
    memory_mib,
    process_tree,
    report,
    run_wrk,
    serve_command,
    start_server,
    stop_server,
)

CPT = "http://www.ama-assn.org/go/cpt"
HL7_VS = "http://terminology.hl7.org/ValueSet"
ORDER_SETS = "https://terminology.cpt-imaging.org/fhir/ValueSet"
Q = urllib.parse.quote

LUA = """
local paths = {}
for line in io.lines(os.getenv("TX_BENCH_PATHS")) do paths[#paths + 1] = line end
math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
request = function() return wrk.format("GET", paths[math.random(#paths)]) end
"""


def release_sample(db: Path) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """(code, display) of every code, the base (non-modifier) codes, and the display words."""
    from terminology.cpt.release import read_cpt_db
    from terminology.providers.text_index import words

    release = read_cpt_db(db)
    codes = [(c.code, c.display) for c in release.concepts.values()]
    base = [c.code for c in release.concepts.values() if not c.modifier]
    vocabulary = sorted({w for _, d in codes for w in words(d) if len(w) >= 3 and w.isalpha()})
    return codes, base, vocabulary


def request_lists(db: Path, rng: random.Random) -> dict[str, list[str]]:
    """Per operation, the paths wrk draws from."""
    codes, base, vocabulary = release_sample(db)
    lookup = [f"/fhir/CodeSystem/$lookup?system={Q(CPT)}&code={Q(c)}" for c, _ in codes]
    cs_validate = [f"/fhir/CodeSystem/$validate-code?url={Q(CPT)}&code={Q(c)}&display={Q(d)}"
                   for c, d in codes]
    vs_base = [f"/fhir/ValueSet/$validate-code?url={Q(HL7_VS + '/cpt-base')}&system={Q(CPT)}&code={c}"
               for c in base]
    vs_facet = [f"/fhir/ValueSet/$validate-code?url={Q(ORDER_SETS + '/imaging-with-contrast')}"
                f"&system={Q(CPT)}&code={Q(c)}" for c, _ in codes]
    prefixes = []
    for _ in range(5000):
        chosen = rng.sample(vocabulary, rng.choice((1, 1, 2)))
        prefixes.append(" ".join(w[:rng.randint(3, max(3, min(6, len(w))))] for w in chosen))
    search = [f"/fhir/ValueSet/$expand?url={Q(HL7_VS + '/cpt-all')}&filter={Q(p)}&count=20"
              for p in prefixes]
    # Zipf (s = 1) over the codes in a random order: a few codes make most of the traffic
    ranked = lookup[:]
    rng.shuffle(ranked)
    weights = [1 / (i + 1) for i in range(len(ranked))]
    zipf = rng.choices(ranked, weights=weights, k=50_000)
    return {"lookup": lookup, "cs_validate": cs_validate, "vs_base": vs_base,
            "vs_facet": vs_facet, "search": search, "zipf": zipf}


COUNT_ALL = f"/fhir/ValueSet/$expand?url={Q(HL7_VS + '/cpt-all')}&count=0"
COUNT_FACET = f"/fhir/ValueSet/$expand?url={Q(ORDER_SETS + '/spine-ct')}&count=0"
RAW_FLOOR = "raw floor (trivial WSGI app)"
TARGETS_OFF = [
    (RAW_FLOOR, None, "/"),
    ("healthz (Flask)", None, "/healthz"),
    ("$lookup, random code", "lookup", None),
    ("$lookup, random code, 16 connections", "lookup", None),
    ("CS $validate-code, random code + display", "cs_validate", None),
    ("VS $validate-code, cpt-base (modifier=false)", "vs_base", None),
    ("VS $validate-code, facet filter VS", "vs_facet", None),
    ("$expand cpt-all filter=random prefix count=20", "search", None),
    ("$expand cpt-all count=0", None, COUNT_ALL),
    ("$expand spine-ct (facets) count=0", None, COUNT_FACET),
]
TARGETS_ON = [
    (RAW_FLOOR, None, "/"),
    ("healthz (Flask)", None, "/healthz"),
    ("$lookup, random code (cache on)", "lookup", None),
    ("$lookup, Zipf mix (cache on)", "zipf", None),
]


def get(base: str, path: str, data: bytes | None = None) -> tuple[float, dict[str, Any]]:
    """(milliseconds, decoded JSON) of one request."""
    req = urllib.request.Request(base + path, data=data,
                                 headers={"Content-Type": "application/fhir+json"} if data else {})
    started = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as r:
        body = r.read()
    return round((time.perf_counter() - started) * 1000, 2), json.loads(body)


def check(base: str, name: str, path: str) -> None:
    """The answer must be a success (a $validate-code of cpt-base must say true)."""
    _, body = get(base, path)
    if "cpt-base" in path and not any(p.get("valueBoolean") is True for p in body.get("parameter", [])
                                      if p.get("name") == "result"):
        raise SystemExit(f"{name}: not valid: {json.dumps(body)[:300]}")


def first_counts(base: str, log: Path) -> dict[str, Any]:
    """The first count=0 answers of a fresh server, four of each on fresh connections (so
    both workers answer some): as the client saw them, and as the server's access log
    timed them (from the request reaching the app to the answer)."""
    out: dict[str, Any] = {}
    for name, path in (("count=0 all CPT", COUNT_ALL), ("count=0 spine-ct", COUNT_FACET)):
        start = log.stat().st_size
        times, total = [], None
        for _ in range(4):
            ms, body = get(base, path)
            times.append(ms)
            total = body["expansion"]["total"]
        time.sleep(0.5)  # the access lines are written within 0.1 s (logs.py)
        text = log.read_bytes()[start:].decode(errors="replace")
        server = [float(m) for m in re.findall(r'"path":"/fhir/ValueSet/\$expand".*?"duration_ms":([\d.]+)', text)]
        out[name] = {"client_ms": times, "server_ms": server, "total": total}
    return out


def first_posts(base: str, log: Path) -> dict[str, Any]:
    """The first POSTs of a fresh server: an inline value set of all CPT, count=0, three
    on fresh connections (so both workers answer some), client and server (access log) ms."""
    body = json.dumps({"resourceType": "Parameters", "parameter": [
        {"name": "valueSet", "resource": {"resourceType": "ValueSet", "status": "active",
                                          "compose": {"include": [{"system": CPT}]}}},
        {"name": "count", "valueInteger": 0}]}).encode()
    start = log.stat().st_size
    times, total = [], None
    for _ in range(3):
        ms, answer = get(base, "/fhir/ValueSet/$expand", body)
        times.append(ms)
        total = answer["expansion"]["total"]
    time.sleep(0.5)  # the access lines are written within 0.1 s (logs.py)
    text = log.read_bytes()[start:].decode(errors="replace")
    server = [float(m) for m in re.findall(r'"method":"POST","path":"/fhir/ValueSet/\$expand".*?"duration_ms":([\d.]+)', text)]
    return {"inline VS count=0 all CPT (POST)": {"client_ms": times, "server_ms": server, "total": total}}


def big_requests(base: str, codes: list[tuple[str, str]]) -> dict[str, Any]:
    """One CodeableConcept of 30,000 codings; one inline compose of 10,000 includes."""
    codings = [{"system": CPT, "code": codes[i % len(codes)][0]} for i in range(30_000)]
    cc = {"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": f"{HL7_VS}/cpt-base"},
        {"name": "codeableConcept", "valueCodeableConcept": {"coding": codings}}]}
    vs = {"resourceType": "ValueSet", "status": "active", "compose": {"include": [
        {"system": CPT, "concept": [{"code": codes[i][0]}]} for i in range(10_000)]}}
    compose = {"resourceType": "Parameters", "parameter": [
        {"name": "valueSet", "resource": vs},
        {"name": "coding", "valueCoding": {"system": CPT, "code": codes[9_999][0]}}]}
    out: dict[str, Any] = {}
    for name, path, body in (
            ("30,000 codings, VS $validate-code", "/fhir/ValueSet/$validate-code", cc),
            ("10,000 includes, VS $validate-code", "/fhir/ValueSet/$validate-code", compose),
            ("10,000 includes, $expand count=0",
             "/fhir/ValueSet/$expand",
             {"resourceType": "Parameters", "parameter": [
                 {"name": "valueSet", "resource": vs}, {"name": "count", "valueInteger": 0}]})):
        try:
            ms, answer = get(base, path, json.dumps(body).encode())
            result = next((p.get("valueBoolean") for p in answer.get("parameter", [])
                           if p.get("name") == "result"), answer.get("expansion", {}).get("total"))
            out[name] = {"ms": ms, "result": result}
        except urllib.error.HTTPError as e:
            out[name] = {"error": e.code, "body": e.read().decode()[:200]}
    return out


def cache_hits(log: Path, start: int) -> tuple[int, int]:
    """(hits, operation requests) in the access log past byte `start`."""
    text = log.read_bytes()[start:].decode(errors="replace")
    ops = re.findall(r'"path":"/fhir/[^"]*\$[^"]*"[^\n]*', text)
    return sum('"cache":"hit"' in line for line in ops), len(ops)


def measure(base: str, raw: str, targets: list[tuple[str, str | None, str | None]], lists: dict[str, list[str]],
            args: argparse.Namespace, tmp: Path, log: Path) -> list[dict[str, Any]]:
    """Every target `rounds` times, interleaved; medians and ratios to the floor."""
    script = tmp / "random.lua"
    script.write_text(LUA)
    files: dict[str, Path] = {}
    for listed, paths in lists.items():
        files[listed] = tmp / f"{listed}.txt"
        files[listed].write_text("\n".join(paths) + "\n")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in targets}

    def once(name: str, key: str | None, path: str | None, seconds: float) -> dict[str, Any]:
        connections = 16 if "16 connections" in name else args.connections
        if key is None:
            assert path is not None
            return run_wrk((raw if name == RAW_FLOOR else base) + path, seconds, connections, args.threads)
        os.environ["TX_BENCH_PATHS"] = str(files[key])
        start = log.stat().st_size
        result: dict[str, Any] = dict(run_wrk(base + "/", seconds, connections, args.threads,
                                              ["-s", str(script)]))
        time.sleep(0.3)  # the last access lines are written within 0.1 s (logs.py)
        hits, total = cache_hits(log, start)
        result["cache_hit_ratio"] = round(hits / total, 3) if total else None
        return result

    for name, key, path in targets:
        check(raw if name == RAW_FLOOR else base, name, path or lists[key or ""][0])
        once(name, key, path, args.warmup)
    for r in range(args.rounds):
        for name, key, path in targets:
            result = once(name, key, path, args.duration)
            runs[name].append(result)
            print(f"  round {r + 1}/{args.rounds} {name:48s} {result['rps']:9.0f} req/s "
                  f"p50 {result['p50']:.2f} ms", flush=True)
    floor = runs[targets[0][0]]
    out = []
    for name, _, _ in targets:
        rs = runs[name]
        hit = [x["cache_hit_ratio"] for x in rs if x.get("cache_hit_ratio") is not None]
        out.append({
            "name": name, "rps": round(statistics.median(x["rps"] for x in rs)),
            "p50_ms": statistics.median(x["p50"] for x in rs),
            "p99_ms": statistics.median(x["p99"] for x in rs),
            "x_floor": round(statistics.median(x["rps"] / f["rps"] for x, f in zip(rs, floor, strict=True)), 2),
            "errors": sum(int(x["errors"]) for x in rs),
            "cache_hit_ratio": round(statistics.median(hit), 3) if hit else None, "rounds": rs})
    return out


def serve(args: argparse.Namespace, cache: bool, lists: dict[str, list[str]],
          codes: list[tuple[str, str]], tmp: Path) -> dict[str, Any]:
    """One server: start (timed), first answers, big requests, wrk figures, memory."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    if not cache:
        env["TX_RESPONSE_CACHE_BYTES"] = "0"
    command = serve_command("default", port, [args.cpt])
    started = time.monotonic()
    proc = start_server(command, env, base)
    ready_s = round(time.monotonic() - started, 2)
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"load-server-{os.getpid()}.log"  # start_server's
    out: dict[str, Any] = {"cache": cache, "start_to_ready_s": ready_s}
    raw_port = free_port()
    raw_proc = start_raw_floor(raw_port, tmp)
    try:
        if not cache:
            out["first_posts"] = first_posts(base, log)
            out["first_counts"] = first_counts(base, log)
            out["big_requests"] = big_requests(base, codes)
        out["figures"] = measure(base, f"http://127.0.0.1:{raw_port}", TARGETS_ON if cache else TARGETS_OFF,
                                 lists, args, tmp, log)
        out["memory_mib"] = {("main" if pid == proc.pid else f"worker {pid}"): memory_mib(pid)
                             for pid in process_tree(proc.pid)}
    finally:
        stop_server(proc)
        stop_server(raw_proc)
    return out


def start_raw_floor(port: int, tmp: Path) -> subprocess.Popen[bytes]:
    """raw_floor.py's server on `port` (its own log in `tmp`), once it answers."""
    with (tmp / "raw-floor.log").open("wb") as out:
        proc = subprocess.Popen([sys.executable, "raw_floor.py", "--port", str(port)],
                                cwd=Path(__file__).resolve().parent, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                return proc
        except OSError:
            time.sleep(0.2)
    stop_server(proc)
    raise SystemExit("the raw floor server did not answer")


def print_run(run: dict[str, Any]) -> None:
    """One server's figures as a table."""
    print(f"\ncache {'on' if run['cache'] else 'off'}: ready in {run['start_to_ready_s']} s")
    print(f"{'request':48s} {'req/s':>8s} {'p50 ms':>7s} {'p99 ms':>7s} {'x floor':>7s} {'hits':>5s}")
    for f in run["figures"]:
        hits = "" if f["cache_hit_ratio"] is None else f"{f['cache_hit_ratio']:.2f}"
        print(f"{f['name']:48s} {f['rps']:8d} {f['p50_ms']:7.2f} {f['p99_ms']:7.2f} "
              f"{f['x_floor']:7.2f} {hits:>5s}")
    for key in ("first_posts", "first_counts", "big_requests"):
        for name, v in run.get(key, {}).items():
            print(f"{name}: {v}")
    print("memory (MiB): " + "; ".join(f"{k} rss {m.get('rss', 0):.1f} pss {m.get('pss', 0):.1f}"
                                       for k, m in run["memory_mib"].items()))


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpt", type=Path, required=True, help="a full-size CPT database (import-cpt)")
    p.add_argument("--duration", type=float, default=5, help="seconds per wrk run (default 5)")
    p.add_argument("--rounds", type=int, default=2, help="runs per request, interleaved (default 2)")
    p.add_argument("--warmup", type=float, default=1, help="seconds of warm-up per request")
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=15)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--cache-off-only", action="store_true",
                   help="only the run with the response cache off (before/after comparisons)")
    args = p.parse_args(argv)
    started = time.monotonic()
    rng = random.Random(args.seed)
    lists = request_lists(args.cpt, rng)
    codes, _, _ = release_sample(args.cpt)
    with tempfile.TemporaryDirectory() as tmp:
        runs = [serve(args, False, lists, codes, Path(tmp))]
        if not args.cache_off_only:
            runs.append(serve(args, True, lists, codes, Path(tmp)))
    for run in runs:
        print_run(run)
    report({"machine": machine(), "cpt": str(args.cpt), "runs": runs}, started, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
