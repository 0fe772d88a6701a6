"""The fleet's deployment files parse and fit the program (no Docker engine or cluster here):
docker/compose.fleet.yaml and deploy/k8s/, their settings loaded as the program loads them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from xnoryolo.service.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_compose_fleet() -> None:
    compose = _docs(ROOT / "docker" / "compose.fleet.yaml")[0]
    services = compose["services"]
    assert set(services) == {"api", "worker", "postgres", "mosquitto"}
    api, worker = services["api"], services["worker"]
    assert "--no-workers" in api["command"] and api["ports"] == ["8080:8080"]
    assert worker["entrypoint"] == ["xnoryolo", "worker"]
    assert worker["deploy"]["replicas"] >= 2 and worker["healthcheck"]["disable"]
    for s in (api, worker):  # one results root, one job store, one settings file
        assert "data:/data" in s["volumes"] and "./config:/config:ro" in s["volumes"]
        assert s["environment"]["XNORYOLO_JOBS__STORE"].startswith("postgresql://")
        assert s["depends_on"]["postgres"]["condition"] == "service_healthy"
        config = s["command"][s["command"].index("--config") + 1]
        assert (ROOT / "docker" / config.replace("/config/", "config/")).is_file()
    settings = load_settings(ROOT / "docker" / "config" / "fleet.yaml")
    assert settings.data_dir == Path("/data") and settings.mqtt.host == "mosquitto"
    assert (ROOT / "docker" / "config" / "mosquitto.conf").is_file()


def test_kubernetes_manifests(tmp_path: Path) -> None:
    k8s = ROOT / "deploy" / "k8s"
    kustomization = _docs(k8s / "kustomization.yaml")[0]
    objects = [d for name in kustomization["resources"] for d in _docs(k8s / name)]
    for d in objects:
        assert d["apiVersion"] and d["metadata"]["name"]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for d in objects:
        by_kind.setdefault(d["kind"], []).append(d)
    deployments = {d["metadata"]["name"]: d for d in by_kind["Deployment"]}
    api = deployments["xnoryolo-api"]["spec"]["template"]["spec"]["containers"][0]
    worker = deployments["xnoryolo-worker"]["spec"]["template"]["spec"]["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "--no-workers" in api["args"] and worker["command"] == ["xnoryolo", "worker"]
    (service,) = by_kind["Service"]
    assert service["spec"]["ports"][0]["targetPort"] in [p["name"] for p in api["ports"]]
    for name, d in deployments.items():  # selectors select their own pods
        spec = d["spec"]
        assert (
            spec["selector"]["matchLabels"].items()
            <= spec["template"]["metadata"]["labels"].items()
        ), name
        for c in spec["template"]["spec"]["containers"]:
            assert c["envFrom"][0]["secretRef"]["name"] == by_kind["Secret"][0]["metadata"]["name"]
    secret = by_kind["Secret"][0]["stringData"]
    assert secret["XNORYOLO_JOBS__STORE"].startswith("postgresql://")
    (pvc,) = by_kind["PersistentVolumeClaim"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]  # the shared results root
    config = tmp_path / "fleet.yaml"
    config.write_text(by_kind["ConfigMap"][0]["data"]["fleet.yaml"])
    settings = load_settings(config, jobs={"store": secret["XNORYOLO_JOBS__STORE"]})
    assert settings.jobs.store.startswith("postgresql://") and settings.data_dir == Path("/data")
