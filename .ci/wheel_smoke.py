#!/usr/bin/env python3
"""The package runs from a wheel: build it, install it in a fresh venv, serve 72126.

Builds the wheel of the checkout (no dependencies; pip fetches the build backend the way
`pip install .` does),
installs it into a new venv that borrows this interpreter's site-packages for the
dependencies (the package itself must come from the wheel, which this checks), starts
`terminology serve` from an unrelated folder and asks for $lookup of CPT 72126 from the
bundled fragment. Prints one line; exit 1 with the server's log when anything fails.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOOKUP = "/fhir/CodeSystem/$lookup?system=http://www.ama-assn.org/go/cpt&code=72126"


def run(*cmd: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a command; its stdout, or exit 1 with its output."""
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"wheel smoke test: {' '.join(map(str, cmd))} failed:\n"
                         f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lookup_72126(base: str, proc: subprocess.Popen[bytes], log: Path) -> dict[str, object]:
    """The $lookup answer once the server is up (60 s at most)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(base + LOOKUP, timeout=2) as r:
                answer: dict[str, object] = json.loads(r.read())
                return answer
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"wheel smoke test: no $lookup answer:\n{log.read_text()[-3000:]}")


def build_wheel(dest: Path) -> Path:
    """The wheel of the checkout, built into dest; setuptools' own build/ and egg-info
    folders are removed again when this build made them (stale files would reach wheels)."""
    made = [p for p in (REPO / "build", REPO / "terminology.egg-info") if not p.exists()]
    try:
        run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dest, REPO, cwd=dest)
    finally:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)
    return next(dest.glob("terminology-*.whl"))


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="wheel-smoke-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "dist").mkdir()
        wheel = build_wheel(tmp / "dist")
        run(sys.executable, "-m", "venv", "--system-site-packages", tmp / "venv")
        python = tmp / "venv" / "bin" / "python"
        run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env.update(TX_LOG_LEVEL="warning", TX_CACHE_DIR=str(tmp / "cache"),
                   TX_DATA_DIR=str(tmp / "data"), TX_WORKERS="1")
        where = run(python, "-c", "import terminology; print(terminology.__file__)",
                    cwd=tmp, env=env).strip()
        if not where.startswith(str(tmp / "venv")):
            raise SystemExit(f"wheel smoke test: terminology imported from {where}, not the wheel")
        port = free_port()
        log = tmp / "server.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([tmp / "venv" / "bin" / "terminology", "serve", "--port",
                                     str(port)], cwd=tmp, env=env, stdout=out,
                                    stderr=subprocess.STDOUT)
            try:
                answer = lookup_72126(f"http://127.0.0.1:{port}", proc, log)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        display = next((p.get("valueString") for p in answer.get("parameter", [])  # type: ignore[attr-defined]
                        if p.get("name") == "display"), None)
        if not display:
            raise SystemExit(f"wheel smoke test: $lookup of 72126 has no display: {answer}")
        print(f"wheel smoke test: {wheel.name} installed in a fresh venv serves 72126 "
              f"({display[:40]}...)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
