"""Load benchmark: start the server as the README does, then measure it with wrk.

    python benchmarks/load.py [--duration 6] [--rounds 3] [--connections 8] [--server granian]
                              [--no-cache] [--cpt FILE] [--json FILE] [--gzip] [--header H]

Starts `terminology serve` (production server, default settings, a free port), waits for
/readyz, checks every answer once, warms up, then runs wrk against /healthz (the floor: the
cheapest request the app answers) and each operation, interleaved in rounds so that a noisy
neighbour slows all of them alike. Prints the median requests/s, p50 and p99 latency of each
and its throughput as a ratio of the floor's in the same run, then each worker's memory.
wrk is the Debian package `wrk` (apt-get install -y wrk).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

CPT = "http://www.ama-assn.org/go/cpt"
ORDER_SETS = "https://terminology.cpt-imaging.org/fhir/ValueSet"
LOOKUP_72126 = f"/fhir/CodeSystem/$lookup?system={CPT}&code=72126"


@dataclass(frozen=True)
class Target:
    """One measured request: a name, the GET path+query, the handler it needs, a sanity check."""

    name: str
    path: str
    handler: tuple[str, str] | None  # (resource type, operation) in HANDLERS; None: always there
    expect: str  # a fragment the answer must contain


TARGETS = (
    Target("healthz (floor)", "/healthz", None, '"ok"'),
    Target("$lookup", LOOKUP_72126,
           ("CodeSystem", "lookup"), '"valueCode":"72126"'),
    Target("$lookup XML", LOOKUP_72126 + "&_format=xml",
           ("CodeSystem", "lookup"), '<valueCode value="72126"/>'),
    Target("CodeSystem $validate-code",
           f"/fhir/CodeSystem/$validate-code?url={CPT}&code=72126&display={{display}}",
           ("CodeSystem", "validate-code"), '"name":"result","valueBoolean":true'),
    Target("ValueSet $validate-code",
           f"/fhir/ValueSet/$validate-code?url={ORDER_SETS}/imaging-with-contrast&system={CPT}&code=72126",
           ("ValueSet", "validate-code"), '"name":"result","valueBoolean":true'),
    Target("$expand spine-ct", f"/fhir/ValueSet/$expand?url={ORDER_SETS}/spine-ct",
           ("ValueSet", "expand"), '"code":"72126"'),
    Target("$expand filter=cerv", f"/fhir/ValueSet/$expand?url={ORDER_SETS}/all-radiology&filter=cerv",
           ("ValueSet", "expand"), '"code":"72126"'),
)


@dataclass
class Figures:
    """What wrk measured for one target (medians over the rounds)."""

    name: str
    path: str
    requests_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    ratio_to_floor: float = 0.0
    errors: int = 0
    rounds: list[dict[str, float]] = field(default_factory=list)


# -- the server ---------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(command: list[str], env: dict[str, str], base: str, timeout: float = 60) -> subprocess.Popen[bytes]:
    """Start `command` in its own process group and wait until base/readyz answers 200."""
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"load-server-{os.getpid()}.log"
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return proc
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    stop_server(proc)
    raise SystemExit(f"the server was not ready within {timeout:.0f} s; see {log}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (graceful), SIGKILL it if it lingers."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=25)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def serve_command(server: str, port: int, cpt: list[Path]) -> list[str]:
    """`terminology serve` as the README runs it, on `port`, with `server`."""
    cmd = [sys.executable, "-m", "terminology.cli", "serve", "--port", str(port)]
    if server != "default":
        cmd += ["--server", server]
    for path in cpt:
        cmd += ["--cpt", str(path)]
    return cmd


# -- memory ------------------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """`root` and every descendant process id (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def memory_mib(pid: int) -> dict[str, float]:
    """Resident (RSS) and proportional (PSS: shared pages split between sharers) memory, MiB."""
    out: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss"):
                out[key.lower()] = round(int(rest.split()[0]) / 1024, 1)
    except OSError:
        pass
    return out


# -- wrk ---------------------------------------------------------------------------------------

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(url: str, seconds: float, connections: int, threads: int,
            extra: list[str] | None = None) -> dict[str, float]:
    """One wrk run: requests/s, p50 and p99 latency in ms, non-2xx answers and socket errors."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", *(extra or []), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rps is None:
        raise SystemExit(f"could not read wrk's output:\n{out}")

    def percentile(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return round(float(m.group(1)) * UNITS[m.group(2)], 3) if m else float("nan")

    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return {"rps": float(rps.group(1)), "p50": percentile("50"), "p99": percentile("99"), "errors": errors}


# -- the run -----------------------------------------------------------------------------------


def registered_targets() -> list[Target]:
    """The targets whose operation handler is registered; prints a note for each one skipped."""
    import terminology.http.app  # noqa: F401  (imports the package in the server's order)
    from terminology.operations import HANDLERS

    kept = []
    for t in TARGETS:
        if t.handler is None or t.handler in HANDLERS:
            kept.append(t)
        else:
            print(f"note: skipping {t.name}: no handler for {t.handler} in HANDLERS yet")
    return kept


def with_display(base: str, targets: list[Target]) -> list[Target]:
    """The targets with {display} replaced by 72126's display as the server knows it (the
    bundled fragment's, or a --cpt database's), so $validate-code checks a right display."""
    with urllib.request.urlopen(base + LOOKUP_72126, timeout=10) as r:
        answer = json.loads(r.read())
    display = next(p["valueString"] for p in answer["parameter"] if p["name"] == "display")
    quoted = urllib.parse.quote(display, safe="")
    return [replace(t, path=t.path.replace("{display}", quoted)) for t in targets]


def check_answers(base: str, targets: list[Target]) -> None:
    """Each target answers 200 with what it should contain, before anything is measured."""
    for t in targets:
        try:
            with urllib.request.urlopen(base + t.path, timeout=10) as r:
                body = r.read().decode()
        except urllib.error.HTTPError as e:
            raise SystemExit(f"{t.name}: HTTP {e.code}: {e.read().decode()[:400]}") from e
        if t.expect not in body:
            raise SystemExit(f"{t.name}: the answer lacks {t.expect}: {body[:400]}")


def measure(base: str, targets: list[Target], args: argparse.Namespace) -> list[Figures]:
    """Warm up, then run every target `rounds` times, interleaved; medians per target."""
    extra = [x for h in args.header for x in ("-H", h)]
    for t in targets:
        run_wrk(base + t.path, args.warmup, args.connections, args.threads, extra)
    runs: dict[str, list[dict[str, float]]] = {t.name: [] for t in targets}
    for r in range(args.rounds):
        for t in targets:
            result = run_wrk(base + t.path, args.duration, args.connections, args.threads, extra)
            runs[t.name].append(result)
            print(f"  round {r + 1}/{args.rounds} {t.name:28s} {result['rps']:9.0f} req/s", flush=True)
    figures = []
    for t in targets:
        rs = runs[t.name]
        figures.append(Figures(
            t.name, t.path,
            requests_per_s=round(statistics.median(x["rps"] for x in rs), 1),
            p50_ms=round(statistics.median(x["p50"] for x in rs), 3),
            p99_ms=round(statistics.median(x["p99"] for x in rs), 3),
            errors=int(sum(x["errors"] for x in rs)), rounds=rs))
    floor = figures[0].requests_per_s
    for i, f in enumerate(figures):
        # The ratio of medians is noisier than the median of per-round ratios (a neighbour's
        # burst hits one round): use the latter, both measured in this run.
        f.ratio_to_floor = round(statistics.median(
            rs["rps"] / runs[figures[0].name][k]["rps"] for k, rs in enumerate(f.rounds)), 3) if floor else 0.0
        if i == 0:
            f.ratio_to_floor = 1.0
    return figures


def machine() -> dict[str, Any]:
    """nproc, CPU model, memory and load average: the context every figure needs."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kib = 0
    return {"nproc": os.cpu_count(), "cpu": model or platform.processor(),
            "memory_gib": round(mem_kib / 1024 / 1024, 1), "python": platform.python_version(),
            "loadavg": [round(x, 2) for x in os.getloadavg()]}


def print_table(figures: list[Figures], memory: dict[str, dict[str, float]]) -> None:
    """The figures as a table, then memory per process."""
    print(f"\n{'request':28s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'x floor':>8s} {'errors':>7s}")
    for f in figures:
        print(f"{f.name:28s} {f.requests_per_s:9.0f} {f.p50_ms:8.2f} {f.p99_ms:8.2f} "
              f"{f.ratio_to_floor:8.2f} {f.errors:7d}")
    print("\nmemory (MiB): " + "; ".join(
        f"{role} rss {m.get('rss', 0):.1f} pss {m.get('pss', 0):.1f}" for role, m in memory.items()))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=6, help="seconds per wrk run (default 6)")
    p.add_argument("--rounds", type=int, default=3, help="runs per request, interleaved (default 3)")
    p.add_argument("--warmup", type=float, default=1, help="seconds of warm-up per request")
    p.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--server", default="default",
                   help="`terminology serve --server` value (granian, gunicorn); default: its default")
    p.add_argument("--command", default=None,
                   help="serve with this command instead ({port} is replaced); compare_servers.py uses it")
    p.add_argument("--no-cache", action="store_true", help="TX_RESPONSE_CACHE_BYTES=0: every request computed")
    p.add_argument("--cpt", type=Path, action="append", default=[], help="serve a CPT database too")
    p.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    p.add_argument("--header", action="append", default=[],
                   help="a header wrk sends with every request, e.g. 'Accept-Encoding: gzip'")
    p.add_argument("--gzip", action="store_true", help="TX_GZIP=true: the server compresses (compression.py)")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the server, measure every target, stop the server; the figures as a dict."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get update && apt-get install -y wrk")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    if args.no_cache:
        env["TX_RESPONSE_CACHE_BYTES"] = "0"
    if args.gzip:
        env["TX_GZIP"] = "true"
    command = (args.command.format(port=port).split() if args.command
               else serve_command(args.server, port, args.cpt))
    targets = registered_targets()
    started = time.monotonic()
    proc = start_server(command, env, base)
    startup_s = round(time.monotonic() - started, 2)
    try:
        targets = with_display(base, targets)
        check_answers(base, targets)
        print(f"server ready in {startup_s} s: {' '.join(command)}", flush=True)
        figures = measure(base, targets, args)
        pids = process_tree(proc.pid)
        memory = {("main" if pid == proc.pid else f"worker {pid}"): memory_mib(pid) for pid in pids}
    finally:
        stop_server(proc)
    print_table(figures, memory)
    return {"machine": machine(), "command": command, "server": args.server, "cache": not args.no_cache,
            "gzip": args.gzip, "headers": args.header,
            "wrk": {"threads": args.threads, "connections": args.connections, "duration_s": args.duration,
                    "rounds": args.rounds},
            "startup_s": startup_s, "figures": [asdict(f) for f in figures], "memory_mib": memory}


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    started = time.monotonic()
    report(run(args), started, args.json)
    return 0


def report(result: dict[str, Any], started: float, json_path: Path | None) -> None:
    """Print the machine and the run's length; write the figures as JSON when asked."""
    print(f"\nmachine: {result['machine']}; total {time.monotonic() - started:.0f} s")
    if json_path:
        json_path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
