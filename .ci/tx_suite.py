#!/usr/bin/env python3
"""Run HL7's terminology test suite against the real server and hold the passing counts.

Starts `terminology serve` (the production server, bundled content) on a free port, runs
../shared/tx-tests/run.py over every general-mode case, and fails when fewer tests pass than
the figure recorded in .ci/tx-passing (the ratchet: raise it as conformance improves).

Then it runs the ValueSet/$compare suites (`compare` and `related2`, which HL7 files under
the tx.fhir.org mode) and holds them to their own ratchet, .ci/tx-passing-compare.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNNER = REPO.parent / "shared" / "tx-tests" / "run.py"
CASES = REPO.parent / "shared" / "tx-tests" / "cases"
RATCHET = REPO / ".ci" / "tx-passing"
COMPARE_RATCHET = REPO / ".ci" / "tx-passing-compare"
COMPARE_SUITES = ("--mode", "tx.fhir.org", "--suite", "compare", "--suite", "related2")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server exited before it was ready")
        try:
            with urllib.request.urlopen(f"{base}/fhir/metadata", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the server did not answer /fhir/metadata within 60 s")


def run_suites(base: str, report: Path, extra: tuple[str, ...] = ()) -> tuple[int, int]:
    """(passed, failed) of one runner pass; its per-suite lines are printed."""
    out = subprocess.run(
        [sys.executable, str(RUNNER), "--base", f"{base}/fhir", "--tests", str(CASES),
         "--json-out", str(report), *extra],
        capture_output=True, text=True, timeout=1200,
    )
    for line in out.stdout.splitlines():
        if line.startswith("suite "):
            print("  " + line)
    m = re.search(r"^(\d+) passed, (\d+) failed", out.stdout, re.MULTILINE)
    if not m:
        print(out.stdout[-3000:], out.stderr[-3000:])
        raise SystemExit("HL7 tx suite: the runner printed no result")
    return int(m.group(1)), int(m.group(2))


def held(name: str, passed: int, failed: int, ratchet: Path) -> bool:
    """Print the figure; whether it holds the ratchet."""
    floor = int(ratchet.read_text().split()[0])
    print(f"HL7 tx suite ({name}): {passed} of {passed + failed} pass; ratchet {floor}")
    if passed < floor:
        print(f"HL7 tx suite: FAILED: {name}: {passed} passing is below the ratchet of {floor}")
        return False
    return True


def main() -> int:
    if not RUNNER.exists():
        print(f"HL7 tx suite: skipped, {RUNNER} is not present")
        return 0
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TX_LOG_LEVEL": "warning"}
    with tempfile.TemporaryDirectory() as tmp:
        log = open(Path(tmp) / "server.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(["terminology", "serve", "--host", "127.0.0.1", "--port", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_ready(base, proc)
            passed, failed = run_suites(base, Path(tmp) / "report.json")
            compare = run_suites(base, Path(tmp) / "compare.json", COMPARE_SUITES)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    if os.environ.get("TX_SUITE_REPORT"):
        Path(os.environ["TX_SUITE_REPORT"]).write_text(json.dumps(
            {"passed": passed, "failed": failed, "compare_passed": compare[0], "compare_failed": compare[1]}))
    ok = held("general mode", passed, failed, RATCHET)
    ok = held("$compare suites, tx.fhir.org mode", *compare, COMPARE_RATCHET) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
