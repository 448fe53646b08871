#!/usr/bin/env python3
"""Run HL7's terminology test suite against the real server and hold the passing count.

Starts `terminology serve` (the production server, bundled content) on a free port, runs
../shared/tx-tests/run.py over every general-mode case, and fails when fewer tests pass than
the figure recorded in .ci/tx-passing (the ratchet: raise it as conformance improves).
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
            report = Path(tmp) / "report.json"
            out = subprocess.run(
                [sys.executable, str(RUNNER), "--base", f"{base}/fhir", "--tests", str(CASES),
                 "--json-out", str(report)],
                capture_output=True, text=True, timeout=1200,
            )
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    summary = [ln for ln in out.stdout.splitlines() if ln.startswith("suite ")]
    for line in summary:
        print("  " + line)
    m = re.search(r"^(\d+) passed, (\d+) failed", out.stdout, re.MULTILINE)
    if not m:
        print(out.stdout[-3000:], out.stderr[-3000:])
        raise SystemExit("HL7 tx suite: the runner printed no result")
    passed, failed = int(m.group(1)), int(m.group(2))
    floor = int(RATCHET.read_text().split()[0])
    print(f"HL7 tx suite (general mode): {passed} of {passed + failed} pass; ratchet {floor}")
    if os.environ.get("TX_SUITE_REPORT"):
        Path(os.environ["TX_SUITE_REPORT"]).write_text(json.dumps({"passed": passed, "failed": failed}))
    if passed < floor:
        print(f"HL7 tx suite: FAILED: {passed} passing is below the ratchet of {floor}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
