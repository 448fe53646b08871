"""deploy/kubernetes/ checked without a cluster: every object against the schemas of a pinned
Kubernetes version (kubernetes-validate's bundled schemas, offline, strict), each overlay as
kustomize renders it (`kubectl kustomize`, when kubectl is installed; otherwise every base
file alone and every overlay patch against the base object it names), and the facts the
schemas do not know: probes on /readyz and /healthz, non-root, read-only root filesystem,
the CPT volume read-only, every TX_* variable a real setting.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import fields
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from ruamel.yaml import YAML

from terminology.settings import Settings

REPO = Path(__file__).resolve().parents[1]
KUBE = REPO / "deploy" / "kubernetes"
BASE = KUBE / "base"
OVERLAYS = ("dev", "production")
K8S_VERSION = "1.32.0"  # the oldest Kubernetes release these manifests are held to
SETTING_VARS = {"TX_" + f.name.upper() for f in fields(Settings)}


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in YAML(typ="safe").load_all(text) if d]


def base_objects() -> list[dict[str, Any]]:
    kustomization = documents((BASE / "kustomization.yaml").read_text())[0]
    return [d for name in kustomization["resources"] for d in documents((BASE / name).read_text())]


def render(overlay: str, tmp_path: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize` of an overlay (in a copy, with the example secrets filled in)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: overlays are checked patch by patch instead")
    copy = tmp_path / "kubernetes"
    shutil.copytree(KUBE, copy)
    example = copy / "overlays" / overlay / "secrets.env.example"
    if example.exists():
        shutil.copy(example, example.with_suffix(""))
    run = subprocess.run([kubectl, "kustomize", str(copy / "overlays" / overlay)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return documents(run.stdout)


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


def assert_valid(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_every_base_object_matches_the_pinned_kubernetes_schemas() -> None:
    objects = base_objects()
    assert {o["kind"] for o in objects} == {"ConfigMap", "Deployment", "Service",
                                            "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    for obj in objects:
        assert_valid(obj)


def test_every_overlay_patch_names_an_object_of_the_base() -> None:
    names = {(o["kind"], o["metadata"]["name"]) for o in base_objects()}
    for overlay in OVERLAYS:
        kustomization = documents((KUBE / "overlays" / overlay / "kustomization.yaml").read_text())[0]
        for patch in kustomization.get("patches", []):
            for doc in documents((KUBE / "overlays" / overlay / patch["path"]).read_text()):
                assert (doc["kind"], doc["metadata"]["name"]) in names, (overlay, patch)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_renders_to_valid_objects(overlay: str, tmp_path: Path) -> None:
    objects = render(overlay, tmp_path)
    for obj in objects:
        assert_valid(obj)
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
            "ConfigMap", "Secret", "Namespace"} <= kinds
    deployment = by_kind(objects, "Deployment")
    secret = by_kind(objects, "Secret")
    refs = [e for e in deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]]
    assert {"secretRef": {"name": secret["metadata"]["name"], "optional": True}} in refs


def test_production_mounts_the_licensed_cpt_volume_read_only(tmp_path: Path) -> None:
    objects = render("production", tmp_path)
    pod = by_kind(objects, "Deployment")["spec"]["template"]["spec"]
    cpt = next(v for v in pod["volumes"] if v["name"] == "cpt")
    assert cpt == {"name": "cpt", "persistentVolumeClaim": {"claimName": "cpt-licensed",
                                                            "readOnly": True}}
    assert by_kind(objects, "PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadOnlyMany"]
    assert by_kind(objects, "HorizontalPodAutoscaler")["spec"]["minReplicas"] == 3
    assert set(by_kind(objects, "Secret")["data"]) >= {"TX_ADMIN_TOKEN", "TX_STORE_URL"}


def test_deployment_probes_security_and_resources() -> None:
    deployment = next(o for o in base_objects() if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the image's user (Dockerfile)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"requests", "limits"} <= set(container["resources"])
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/data/cpt"]["readOnly"] is True
    assert "/tmp" in mounts  # PROMETHEUS_MULTIPROC_DIR on a read-only root filesystem
    # The drain (20 s) and the preStop pause fit in the grace period.
    assert pod["terminationGracePeriodSeconds"] > 20 + 5


def test_every_configmap_variable_names_a_setting() -> None:
    configmap = next(o for o in base_objects() if o["kind"] == "ConfigMap")
    assert set(configmap["data"]) - SETTING_VARS == set()
    assert configmap["data"]["TX_HOST"] == "0.0.0.0"


def test_metrics_port_is_the_one_prometheus_is_told_to_scrape() -> None:
    objects = base_objects()
    configmap = next(o for o in objects if o["kind"] == "ConfigMap")
    template = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]
    ports = {p["name"]: p["containerPort"] for p in template["spec"]["containers"][0]["ports"]}
    assert str(ports["metrics"]) == configmap["data"]["TX_METRICS_PORT"]
    assert template["metadata"]["annotations"]["prometheus.io/port"] == str(ports["metrics"])


def test_real_secrets_are_never_committed() -> None:
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert "deploy/kubernetes/**/secrets.env" in ignored
