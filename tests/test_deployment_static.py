"""Deployment files checked without a Docker engine.

docker-compose.yml against the compose specification schema (check-jsonschema's vendored
copy, offline), the Dockerfile with hadolint, and the cross-file facts that neither tool
knows: every TX_* variable names a real setting, the nginx template's variables are all set,
the image's content folder is where TX_CONTENT_DIRS points, licensed data never enters it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from terminology.settings import Settings

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
NGINX_TEMPLATE = REPO / "deploy" / "nginx.conf.template"
SETTING_VARS = {"TX_" + f.name.upper() for f in fields(Settings)}
GUNICORN_GRACEFUL_TIMEOUT = 20  # terminology/http/server/workers.py


def tool(name: str) -> str:
    """A console script installed by the test extras (next to this Python, or on PATH)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return found


def compose() -> dict[str, Any]:
    """docker-compose.yml parsed, with its YAML anchors and merge keys resolved."""
    loaded: dict[str, Any] = YAML(typ="safe").load(COMPOSE.read_text())
    return loaded


def dockerfile_env() -> dict[str, str]:
    """The variables the Dockerfile's ENV instructions set (KEY=VALUE form)."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(re.findall(r"(\w+)=(\S*)", line))
    return env


def replicas() -> dict[str, dict[str, Any]]:
    """The terminology services (every service built from this repository)."""
    return {name: s for name, s in compose()["services"].items() if "build" in s}


def test_compose_file_matches_the_compose_specification() -> None:
    run = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                          str(COMPOSE)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ok -- validation done" in run.stdout


def test_dockerfile_passes_hadolint() -> None:
    run = subprocess.run([tool("hadolint"), "--no-color", str(DOCKERFILE)],
                         capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stdout + run.stderr) == (0, "")


def test_every_tx_variable_names_a_setting() -> None:
    named = set(dockerfile_env())
    for service in replicas().values():
        named |= set(service["environment"])
    unknown = {v for v in named if v.startswith("TX_")} - SETTING_VARS
    assert unknown == set()


def test_image_content_folder_is_where_tx_content_dirs_points() -> None:
    # settings.BUNDLED_CONTENT lies next to the package, which the image installs into
    # site-packages: the image must name its copy of codesystems/ itself.
    copied = re.search(r"^COPY codesystems/ (\S+?)/?$", DOCKERFILE.read_text(), re.M)
    assert copied is not None
    assert dockerfile_env()["TX_CONTENT_DIRS"] == copied.group(1)
    for service in replicas().values():
        assert service["environment"]["TX_CONTENT_DIRS"].endswith(f":-{copied.group(1)}}}")


def test_two_identical_replicas_drain_within_their_stop_grace_period() -> None:
    services = replicas()
    assert len(services) == 2
    first, second = services.values()
    assert first == second
    grace = int(first["stop_grace_period"].removesuffix("s"))
    assert grace > GUNICORN_GRACEFUL_TIMEOUT
    assert "/readyz" in " ".join(first["healthcheck"]["test"])
    # By default every database in the read-only mount; with none there, the bundled fragment.
    assert first["environment"]["TX_CPT_DATABASES"] == "${TX_CPT_DATABASES:-/data/cpt}"
    mounts = {v["target"]: v for v in first["volumes"]}
    assert mounts["/data/cpt"]["read_only"] is True


def test_nginx_template_variables_are_all_set_and_upstreams_are_the_replicas() -> None:
    nginx = compose()["services"]["nginx"]
    used = set(re.findall(r"\$\{(\w+)\}", NGINX_TEMPLATE.read_text())) - {"VARIABLES"}
    assert used == set(nginx["environment"])
    upstreams = {nginx["environment"][k].split(":")[0] for k in used if k.startswith("TX_UPSTREAM")}
    assert upstreams == set(replicas())
    assert set(nginx["depends_on"]) == set(replicas())


def test_licensed_data_never_enters_the_image() -> None:
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert "**/*.db" in ignore
    assert "deploy/" not in DOCKERFILE.read_text()


def test_compose_has_no_empty_default_that_podman_compose_cannot_expand() -> None:
    # podman-compose 1.0.3 leaves `${VAR:-}` unexpanded and the replicas crash-loop.
    text = COMPOSE.read_text()
    assert re.findall(r"\$\{\w+:?-\}", text) == []
    assert all(default.strip() for default in re.findall(r"\$\{\w+:?-([^}]*)\}", text))


def test_published_port_is_bound_to_this_machine_by_default() -> None:
    published = [p for s in compose()["services"].values() for p in s.get("ports", [])]
    assert published
    for port in published:
        address = re.match(r"\$\{\w+:-([^}]+)\}:", str(port))
        assert address is not None and address.group(1) == "127.0.0.1", port


def test_dot_env_is_never_committed() -> None:
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()


def test_podman_compose_expands_every_variable() -> None:
    # Debian's podman-compose 1.0.3 (`apt-get install podman-compose`) left
    # `${TX_CPT_DATABASES:-}` unexpanded and both replicas crash-looped. --dry-run prints
    # the podman commands it would run, with every variable as it expanded it.
    found = shutil.which("podman-compose")
    if found is None:
        pytest.skip("podman-compose is not installed (apt-get install podman-compose)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TX_")}
    run = subprocess.run([found, "-f", str(COMPOSE), "--dry-run", "up", "-d"], cwd=REPO,
                         capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "${" not in run.stdout
    assert run.stdout.count("TX_CPT_DATABASES=/data/cpt") == 2
    assert "-p 127.0.0.1:8080:8080" in run.stdout
