"""The fleet's deployment files: the HAProxy config, the compose profile, the Kubernetes overlay.

Checked without a container engine, like tests/integration/test_deploy.py: `haproxy -c` on the
shipped config, the compose service and its mounts, the overlay against the Kubernetes schemas
and through `kubectl kustomize`, and that every name the files share agrees (DNS names,
ports, labels, the settings HAProxy reads). Tools that are missing skip with the reason.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.integration.test_deploy import DOCKER, K8S, PROMETHEUS, ROOT, assert_ok, run, tool

HAPROXY = DOCKER / "haproxy" / "haproxy.cfg"
FLEET = DOCKER / "k8s-fleet"
ENV_REF = re.compile(r"\$\{(UNIPELT_\w+?)(-[^}]*)?\}")


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def fleet_docs() -> dict[tuple[str, str], dict]:
    """(kind, name) -> manifest, as `kubectl kustomize docker/k8s-fleet` renders them."""
    proc = run(tool("kubectl"), "kustomize", str(FLEET))
    assert_ok(proc)
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(proc.stdout) if d}


def haproxy_settings() -> dict[str, str | None]:
    """The UNIPELT_* variables the config reads -> their default (None: none)."""
    refs = ENV_REF.findall(HAPROXY.read_text())
    return {name: default[1:] if default else None for name, default in refs}


# ---- the HAProxy config ----------------------------------------------------------------------


def test_haproxy_config_is_valid() -> None:
    env = {**os.environ, "UNIPELT_FLEET_DNS": "localhost"}
    assert_ok(run(tool("haproxy"), "-c", "-f", str(HAPROXY), env=env))


def test_haproxy_config_routes_on_the_task_with_bounded_load() -> None:
    text = HAPROXY.read_text()
    assert "balance hash var(txn.task)" in text
    assert "hash-type consistent" in text
    assert re.search(r"hash-balance-factor \"\$\{UNIPELT_HASH_BALANCE_FACTOR-(\d+)\}\"", text)
    assert "option httpchk GET /readyz" in text
    assert "http-check expect status 200" in text
    # Both task-naming paths and the fan-out header set the key; writes never retry.
    assert r"^/v1/[^/]+/predict$" in text and "^/v2/models/" in text
    assert "req.hdr(x-unipelt-task)" in text
    assert "disable-l7-retry if !{ var(txn.task) -m found }" in text


def test_every_haproxy_setting_has_a_default() -> None:
    settings = haproxy_settings()
    assert {"UNIPELT_FLEET_DNS", "UNIPELT_HASH_BALANCE_FACTOR", "UNIPELT_CHECK_INTERVAL"} <= set(
        settings
    )
    assert all(default for default in settings.values()), settings


# ---- compose ---------------------------------------------------------------------------------


def test_compose_fleet_profile() -> None:
    compose = load_yaml(ROOT / "docker-compose.yml")
    services = compose["services"]
    lb = services["haproxy"]
    assert lb["profiles"] == ["fleet"]
    assert "profiles" not in services["unipelt"]  # the replicas run with or without it
    assert lb["healthcheck"]["test"]
    source, target = lb["volumes"][0].split(":")[:2]
    assert (ROOT / source / "haproxy.cfg").is_file() and target == "/usr/local/etc/haproxy"
    assert lb["environment"]["UNIPELT_FLEET_DNS"] == "unipelt"  # the service's DNS name
    assert lb["environment"]["UNIPELT_FLEET_PORT"] == "8000"
    assert set(lb["environment"]) <= set(haproxy_settings())
    published = {p.split(":")[-1] for p in lb["ports"]}
    assert published == {"8080", "8404"}


def test_prometheus_scrapes_the_balancer_and_drops_the_adapter_info() -> None:
    config = load_yaml(PROMETHEUS)
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    (sd,) = jobs["haproxy"]["dns_sd_configs"]
    assert sd["names"] == ["haproxy"] and sd["port"] == 8404
    (drop,) = jobs["unipelt"]["metric_relabel_configs"]
    assert drop["action"] == "drop" and drop["regex"] == "unipelt_lora_requests_info"


def test_docker_compose_config_with_the_fleet_profile() -> None:
    docker = tool("docker")
    if run(docker, "compose", "version").returncode != 0:
        pytest.skip("the docker compose plugin is not installed (only the docker client is)")
    env = {**os.environ, "UNIPELT_API_TOKEN": "test-token", "UNIPELT_PORT": "8000-8007"}
    assert_ok(run(docker, "compose", "--profile", "fleet", "config", "--quiet", cwd=ROOT, env=env))


# ---- Kubernetes ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(p.name for p in FLEET.glob("*.yaml")))
def test_fleet_k8s_schema(path: str) -> None:
    for doc in yaml.safe_load_all((FLEET / path).read_text()):
        if doc and "kind" in doc and not doc["apiVersion"].startswith("kustomize."):
            kubernetes_validate.validate(doc, "1.30.0", strict=True)


def test_fleet_overlay_carries_the_shipped_haproxy_config() -> None:
    assert (FLEET / "haproxy.cfg").read_text() == HAPROXY.read_text()
    docs = fleet_docs()
    (config,) = [d for (kind, name), d in docs.items() if name.startswith("unipelt-haproxy-")]
    assert config["kind"] == "ConfigMap" and config["data"]["haproxy.cfg"] == HAPROXY.read_text()
    pod = docs["Deployment", "unipelt-haproxy"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    (lb,) = pod["containers"]
    mount = next(m for m in lb["volumeMounts"] if m["mountPath"] == "/usr/local/etc/haproxy")
    assert volumes[mount["name"]]["configMap"]["name"] == config["metadata"]["name"]


def test_fleet_overlay_wires_haproxy_to_every_replica() -> None:
    docs = fleet_docs()
    assert ("Deployment", "unipelt") in docs and ("HorizontalPodAutoscaler", "unipelt") in docs
    app = docs["Deployment", "unipelt"]["spec"]
    headless = docs["Service", "unipelt-replicas"]["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["selector"] == app["selector"]["matchLabels"]
    (app_port,) = app["template"]["spec"]["containers"][0]["ports"]
    assert headless["ports"][0]["targetPort"] == app_port["name"]
    (lb,) = docs["Deployment", "unipelt-haproxy"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in lb["env"]}
    assert set(env) <= set(haproxy_settings())
    namespace = docs["Service", "unipelt-replicas"]["metadata"]["namespace"]
    assert env["UNIPELT_FLEET_DNS"] == f"unipelt-replicas.{namespace}.svc.cluster.local"
    assert int(env["UNIPELT_FLEET_PORT"]) == headless["ports"][0]["port"] == 8000
    assert lb["image"].startswith("haproxy:")
    ports = {p["name"]: p["containerPort"] for p in lb["ports"]}
    assert ports == {"http": 8080, "stats": 8404}  # the config's default binds
    entry = docs["Service", "unipelt-lb"]["spec"]
    lb_labels = docs["Deployment", "unipelt-haproxy"]["spec"]["selector"]["matchLabels"]
    assert entry["selector"] == lb_labels
    assert {p["targetPort"] for p in entry["ports"]} == {"http", "stats"}
    assert lb["readinessProbe"]["httpGet"]["port"] == "stats"


def test_base_stays_buildable_without_the_fleet() -> None:
    proc = run(tool("kubectl"), "kustomize", str(K8S))
    assert_ok(proc)
    names = {d["metadata"]["name"] for d in yaml.safe_load_all(proc.stdout) if d}
    assert "unipelt-haproxy" not in names
