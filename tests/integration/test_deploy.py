"""Deployment files checked without a container engine: compose, image, k8s, Prometheus, Grafana.

Command-line tools that may be missing (docker compose, promtool, hadolint, kubectl) make
their own checks skip with the reason; Python modules (the app's, kubernetes-validate from the
test extra) are imported outright, so a missing or renamed one fails. Everything else is
parsed and cross-checked here. The dashboard and alert queries are checked against the names
`service.metrics.Metrics` exposes.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.metrics import MetricWrapperBase

from service.metrics import Metrics
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
K8S = DOCKER / "k8s"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "unipelt.json"
PROMETHEUS = DOCKER / "prometheus" / "prometheus.yml"
ALERTS = DOCKER / "prometheus" / "alerts.yml"
SERVICES = ("unipelt", "redis", "prometheus", "grafana")
TARGET_LABELS = {"job", "instance"}  # attached by Prometheus at scrape time
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}
PANEL_TOPICS = (  # (what the dashboard must show, a word its panel title contains)
    ("request rate by task", "request rate by task"),
    ("latency quantiles by task", "p50 / p95 / p99"),
    ("queue wait and forward latency", "queue wait and forward"),
    ("batch size", "batch size"),
    ("distinct tasks per batch", "distinct tasks"),
    ("cache hit ratio", "hit ratio"),
    ("adapter loads", "adapter loads"),
    ("adapter load time", "load time"),
    ("resident adapters", "resident adapters"),
    ("resident bytes", "resident adapter bytes"),
    ("queue depth", "queue depth"),
    ("errors by status", "errors by status"),
    ("canary against live, per version", "canary vs live"),
)


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        pytest.skip(f"{name} not installed (.ci/run installs the deployment tools)")
    return path


def run(*cmd: str, stdin: str | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120, **kw)


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"{proc.args}: {proc.stdout}\n{proc.stderr}"


# ---- exposed metric names, from the app's own registry --------------------------------------


def exposed_series() -> dict[str, set[str]]:
    """Every sample name Metrics() can expose -> the labels it may carry."""
    metrics = Metrics()
    labels = {  # labelled families have no samples until used: read the declared label names
        w._name: set(w._labelnames)
        for w in vars(metrics).values()
        if isinstance(w, MetricWrapperBase)
    }
    series: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        for suffix in SUFFIXES[family.type]:
            extra = {"le"} if suffix == "_bucket" else set()
            series[family.name + suffix] = labels.get(family.name, set()) | extra | TARGET_LABELS
    return series


# ---- PromQL: names and labels, without a PromQL parser --------------------------------------

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or"}
KEYWORDS |= {"unless", "offset", "inf", "nan"}
IDENT = r"[a-zA-Z_:][\w:]*"
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")


def promql_names(expr: str) -> tuple[list[tuple[str, set[str]]], set[str]]:
    """([(metric, labels matched on it)], labels used in by/on/... clauses) of one expression."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings hold $vars and regexes
    grouped = {g.strip() for m in GROUPING.findall(expr) for g in m.split(",") if g.strip()}
    expr = GROUPING.sub(" ", expr)
    selectors = []
    for name, body in re.findall(rf"({IDENT})?\s*\{{([^}}]*)\}}", expr):
        selectors.append((name, set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", body))))
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    for m in re.finditer(rf"(?<![\w.$:]){IDENT}", bare):
        follows = bare[m.end() :].lstrip()[:1]
        if m.group() not in KEYWORDS and follows != "(" and not re.match(r"\d", follows):
            selectors.append((m.group(), set()))
    return [(n, labels) for n, labels in selectors if n], grouped


def dashboard_queries() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def alert_queries() -> list[str]:
    return [r["expr"] for g in load_yaml(ALERTS)["groups"] for r in g["rules"]]


def check_query(expr: str, series: dict[str, set[str]]) -> None:
    selectors, grouped = promql_names(expr)
    assert selectors, f"no metric in {expr!r}"
    for name, labels in selectors:
        assert name in series, f"{name!r} in {expr!r} is not exposed by service.metrics"
        assert labels <= series[name], f"{name} has no label {labels - series[name]}: {expr!r}"
    everything = set().union(*(series[n] for n, _ in selectors))
    assert grouped <= everything, f"grouping by unknown labels {grouped - everything}: {expr!r}"


@pytest.mark.parametrize("source", [dashboard_queries, alert_queries], ids=["dashboard", "alerts"])
def test_queries_use_only_exposed_metrics_and_labels(source) -> None:
    series = exposed_series()
    queries = source()
    assert queries
    for expr in queries:
        check_query(expr, series)


def test_dashboard_variables_use_exposed_metrics() -> None:
    series = exposed_series()
    variables = json.loads(DASHBOARD.read_text())["templating"]["list"]
    for var in (v for v in variables if v["type"] == "query"):
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", var["query"]["query"].strip())
        assert m, f"variable {var['name']}: expected label_values(selector, label)"
        check_query(m.group(1), series)
        metric = promql_names(m.group(1))[0][0][0]
        assert m.group(2) in series[metric], f"variable {var['name']}: {metric} lacks that label"


def test_custom_metric_for_autoscaling_is_an_exposed_gauge() -> None:
    gauges = {f.name for f in Metrics().registry.collect() if f.type == "gauge"}
    hpa = load_yaml(K8S / "hpa-queue-depth.yaml")
    pods = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    rules = load_yaml(K8S / "prometheus-adapter-values.yaml")["rules"]["custom"]
    served = {r["name"]["as"] for r in rules}
    queried = {promql_names(r["seriesQuery"])[0][0][0] for r in rules}
    assert pods and set(pods) <= served and queried <= gauges


def test_dashboard_promql_parses(tmp_path: Path) -> None:
    promtool = tool("promtool")

    def substitute(expr: str) -> str:  # Grafana variables -> values PromQL accepts
        return re.sub(r"\$\{?(\w+)\}?", lambda m: "5m" if m[1].startswith("__") else ".+", expr)

    rules = [
        {"record": f"dashboard:query_{i}", "expr": substitute(e)}
        for i, e in enumerate(dashboard_queries())
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert_ok(run(promtool, "check", "rules", str(path)))


# ---- Grafana ---------------------------------------------------------------------------------


def test_dashboard_has_every_panel() -> None:
    dash = json.loads(DASHBOARD.read_text())
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    titles = [p["title"].lower() for p in panels]
    for topic, word in PANEL_TOPICS:
        assert any(word in t for t in titles), f"no panel for {topic}"
    for p in panels:
        assert {"x", "y", "w", "h"} <= p["gridPos"].keys(), p["title"]
        assert p["targets"] and all(t["expr"].strip() for t in p["targets"]), p["title"]
        assert p["datasource"]["uid"] == "${datasource}", p["title"]


def test_grafana_provisioning_matches_compose() -> None:
    compose = load_yaml(ROOT / "docker-compose.yml")["services"]
    mounts = dict(reversed(v.split(":")[:2]) for v in compose["grafana"]["volumes"])
    provisioning = DOCKER / "grafana" / "provisioning"
    assert mounts["/etc/grafana/provisioning"] == "./docker/grafana/provisioning"
    (datasource,) = load_yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert datasource["url"] == "http://prometheus:9090" and "prometheus" in compose
    variables = json.loads(DASHBOARD.read_text())["templating"]["list"]
    default = next(v for v in variables if v["name"] == "datasource")["current"]["value"]
    assert default == datasource["uid"]
    (provider,) = load_yaml(provisioning / "dashboards" / "unipelt.yml")["providers"]
    assert mounts[provider["options"]["path"]] == "./docker/grafana/dashboards"


# ---- Prometheus ------------------------------------------------------------------------------


def test_prometheus_config_is_valid() -> None:
    assert_ok(run(tool("promtool"), "check", "config", str(PROMETHEUS)))


def test_prometheus_scrapes_the_app_port() -> None:
    config = load_yaml(PROMETHEUS)
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "unipelt"]
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["unipelt"] and sd["port"] == 8000
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert all((PROMETHEUS.parent / f).exists() for f in config["rule_files"])


def test_registry_passes_promtool_lint() -> None:
    metrics = Metrics()
    metrics.requests.labels("sst2", "200").inc()
    metrics.request_duration.labels("sst2").observe(0.012)
    metrics.batch_size.observe(8)
    metrics.uploads.labels("ok").inc()
    metrics.queue_depth.set(3)
    text = generate_latest(metrics.registry).decode()
    assert_ok(run(tool("promtool"), "check", "metrics", stdin=text))


# ---- docker compose --------------------------------------------------------------------------


def test_compose_services_have_healthchecks_and_volumes() -> None:
    compose = load_yaml(ROOT / "docker-compose.yml")
    services = compose["services"]
    assert set(SERVICES) <= services.keys()
    for name in SERVICES:
        assert services[name]["healthcheck"]["test"], f"{name} has no healthcheck"
        for volume in services[name].get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"
    app = services["unipelt"]
    assert (ROOT / app["build"]["context"] / app["build"]["dockerfile"]).exists()
    assert app["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert app["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "/readyz" in " ".join(app["healthcheck"]["test"])
    assert "--appendonly" in services["redis"]["command"]
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])


def test_gpu_override_reserves_a_gpu() -> None:
    app = load_yaml(DOCKER / "compose.gpu.yml")["services"]["unipelt"]
    assert app["build"]["args"]["VARIANT"] == "cuda"
    assert app["environment"]["UNIPELT_DEVICE"] == "cuda"
    (device,) = app["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]


@pytest.mark.parametrize(
    "files", [["docker-compose.yml"], ["docker-compose.yml", "docker/compose.gpu.yml"]]
)
def test_docker_compose_config(files: list[str]) -> None:
    docker = tool("docker")
    if run(docker, "compose", "version").returncode != 0:
        pytest.skip("the docker compose plugin is not installed (only the docker client is)")
    args = [a for f in files for a in ("-f", f)]
    env = {**os.environ, "UNIPELT_API_TOKEN": "test-token"}
    assert_ok(run(docker, "compose", *args, "config", "--quiet", cwd=ROOT, env=env))


# ---- image -----------------------------------------------------------------------------------


def dockerfile() -> tuple[dict[str, str], list[list[tuple[str, str]]]]:
    """(ARG defaults, stages as [(INSTRUCTION, rest)]) with line continuations joined."""
    text = re.sub(r"\\\n", " ", (DOCKER / "Dockerfile").read_text())
    args: dict[str, str] = {}
    stages: list[list[tuple[str, str]]] = [[]]
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        op, _, rest = line.strip().partition(" ")
        if op.upper() == "FROM":
            stages.append([])
        if op.upper() == "ARG" and "=" in rest:
            key, _, value = rest.partition("=")
            args.setdefault(key.strip(), value.strip())
        stages[-1].append((op.upper(), rest.strip()))
    return args, stages


def test_dockerfile_runtime_stage() -> None:
    args, stages = dockerfile()
    final = dict(stages[-1])  # last instruction of each kind in the runtime stage
    base = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], final["FROM"].split()[0])
    assert base == "python:3.11-slim"
    assert final["USER"].split(":")[0] not in ("root", "0")
    assert "/healthz" in final["HEALTHCHECK"] and final["EXPOSE"] == "8000"
    assert json.loads(final["VOLUME"]) == ["/data"] and "UNIPELT_DATA_DIR=/data" in final["ENV"]
    assert json.loads(final["CMD"]) == ["unipelt", "serve", "--host", "0.0.0.0", "--port", "8000"]
    assert args["VARIANT"] == "cpu"


def test_dockerfile_torch_matches_pyproject_pin() -> None:
    (pin,) = re.findall(r'"torch==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert dockerfile()[0]["TORCH_VERSION"] == pin


def test_start_command_flags_exist() -> None:
    """The image's and the Deployment's `unipelt serve ...` use flags the CLI defines."""
    image = json.loads(dict(dockerfile()[1][-1])["CMD"])
    pod = load_yaml(K8S / "deployment.yaml")["spec"]["template"]["spec"]
    for cmd in (image, pod["containers"][0]["command"]):
        assert cmd[:2] == ["unipelt", "serve"]
        proc = run(sys.executable, "-m", "cli", "serve", "--help", cwd=ROOT)
        assert_ok(proc)
        for flag in (a for a in cmd if a.startswith("--")):
            assert flag in proc.stdout, f"`unipelt serve` has no {flag} option:\n{proc.stdout}"


def in_build_context(rel: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule (last match wins, a match on a parent counts) for our globs."""
    parts = rel.split("/")
    included = True
    for pattern in patterns:
        keep = pattern.startswith("!")
        glob = pattern.lstrip("!").strip("/")
        if any(fnmatch.fnmatch("/".join(parts[:i]), glob) for i in range(1, len(parts) + 1)):
            included = keep
    return included


def test_image_sources_build_a_wheel(tmp_path: Path) -> None:
    """What the Dockerfile COPYs is in the build context and `pip install .` builds from it."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [p.strip() for p in lines if p.strip() and not p.startswith("#")]
    copies = [rest.split()[0] for op, rest in dockerfile()[1][1] if op == "COPY"]
    context = tmp_path / "context"
    for rel in copies:
        assert (ROOT / rel).exists(), f"COPY {rel}: missing from the repository"
        assert in_build_context(rel, patterns), f"COPY {rel}: excluded by .dockerignore"
        for path in [ROOT / rel, *(ROOT / rel).rglob("*")]:
            name = path.relative_to(ROOT).as_posix()
            if path.is_file() and in_build_context(name, patterns):
                (context / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, context / name)
    out = tmp_path / "wheel"
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    assert_ok(run(*pip, "-w", str(out), str(context)))
    names = zipfile.ZipFile(next(out.glob("*.whl"))).namelist()
    assert "service/main.py" in names and "adapters/__init__.py" in names
    assert not [n for n in names if "__pycache__" in n]
    static = [p.relative_to(ROOT).as_posix() for p in (ROOT / "service/static").rglob("*.*")]
    assert static and set(static) <= set(names), "the console's files must be in the wheel"
    # The image's CMD runs the `unipelt` console script: its module must be in the wheel.
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(next(out.glob("*.whl"))).read(entry_points).decode()
    target = re.search(r"^unipelt\s*=\s*([\w.]+):", text, re.M)[1]
    assert target.replace(".", "/") + ".py" in names, f"console script target {target} missing"


def test_hadolint() -> None:
    assert_ok(run(tool("hadolint"), str(DOCKER / "Dockerfile")))


# ---- Kubernetes ------------------------------------------------------------------------------


def k8s_docs() -> dict[tuple[str, str], dict]:
    """(kind, name) -> manifest, for the resources kustomization.yaml applies."""
    kustomization = load_yaml(K8S / "kustomization.yaml")
    docs = [
        d for f in kustomization["resources"] for d in yaml.safe_load_all((K8S / f).read_text())
    ]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs if d}


def test_every_k8s_yaml_parses() -> None:
    files = sorted(K8S.glob("*.yaml"))
    assert files
    for path in files:
        assert [d for d in yaml.safe_load_all(path.read_text()) if d], path.name


def test_k8s_has_the_required_kinds() -> None:
    docs = k8s_docs()
    kinds = {kind for kind, _ in docs}
    required = {"Namespace", "ConfigMap", "Deployment", "Service", "StatefulSet"}
    assert required | {"HorizontalPodAutoscaler", "PodDisruptionBudget"} <= kinds
    assert docs["HorizontalPodAutoscaler", "unipelt"]["apiVersion"] == "autoscaling/v2"
    assert load_yaml(K8S / "secret.example.yaml")["kind"] == "Secret"
    labels = docs["Deployment", "unipelt"]["spec"]["selector"]["matchLabels"]
    assert docs["Service", "unipelt"]["spec"]["selector"] == labels
    assert docs["PodDisruptionBudget", "unipelt"]["spec"]["selector"]["matchLabels"] == labels
    assert docs["HorizontalPodAutoscaler", "unipelt"]["spec"]["scaleTargetRef"]["name"] == "unipelt"


def test_k8s_deployment_probes_env_and_resources() -> None:
    docs = k8s_docs()
    pod = docs["Deployment", "unipelt"]["spec"]["template"]["spec"]
    # The `unipelt` Service would inject UNIPELT_PORT=tcp://..., which Settings reads as the port.
    assert pod["enableServiceLinks"] is False
    (app,) = pod["containers"]
    assert app["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert app["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert app["ports"][0]["containerPort"] == int(dict(dockerfile()[1][-1])["EXPOSE"])
    assert {"cpu", "memory"} <= app["resources"]["requests"].keys()
    assert "memory" in app["resources"]["limits"]
    token = next(e for e in app["env"] if e["name"] == "UNIPELT_API_TOKEN")["valueFrom"]
    secret = load_yaml(K8S / "secret.example.yaml")
    assert token["secretKeyRef"]["name"] == secret["metadata"]["name"]
    assert token["secretKeyRef"]["key"] in secret["stringData"]
    config = docs["ConfigMap", app["envFrom"][0]["configMapRef"]["name"]]["data"]
    redis_host = re.match(r"redis://([^:/]+)", config["UNIPELT_REDIS_URL"])[1]
    assert ("Service", redis_host) in docs and ("StatefulSet", "redis") in docs


# YAML files in docker/k8s that are not Kubernetes resources, with the test that checks each
NOT_RESOURCES = {
    "kustomization.yaml": "test_kustomization_applies_every_resource_file",
    "prometheus-adapter-values.yaml": "test_custom_metric_for_autoscaling_is_an_exposed_gauge",
}
# Resource files kustomization.yaml leaves out on purpose (docs/deploy.md)
APPLIED_BY_HAND = {"secret.example.yaml", "hpa-queue-depth.yaml"}
RESOURCE_FILES = sorted(p.name for p in K8S.glob("*.yaml") if p.name not in NOT_RESOURCES)


@pytest.mark.parametrize("path", RESOURCE_FILES)
def test_k8s_schema(path: str) -> None:
    docs = [doc for doc in yaml.safe_load_all((K8S / path).read_text()) if doc]
    assert docs, f"{path} holds no document"
    for doc in docs:
        assert "kind" in doc and "apiVersion" in doc, f"{path}: a document without kind"
        kubernetes_validate.validate(doc, "1.30.0", strict=True)


def test_kustomization_applies_every_resource_file() -> None:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["apiVersion"].startswith("kustomize.config.k8s.io/")
    listed = kustomization["resources"]
    assert len(set(listed)) == len(listed) and set(listed) <= set(RESOURCE_FILES)
    assert set(RESOURCE_FILES) - set(listed) == APPLIED_BY_HAND
    docs = k8s_docs()
    assert ("Namespace", kustomization["namespace"]) in docs
    pods = [d["spec"]["template"]["spec"] for d in docs.values() if "template" in d.get("spec", {})]
    images = {c["image"].split(":")[0] for pod in pods for c in pod["containers"]}
    assert {i["name"] for i in kustomization["images"]} <= images


def test_kustomize_builds() -> None:
    proc = run(tool("kubectl"), "kustomize", str(K8S))
    assert_ok(proc)
    kinds = {d["kind"] for d in yaml.safe_load_all(proc.stdout) if d}
    assert {"Deployment", "HorizontalPodAutoscaler", "StatefulSet"} <= kinds


# ---- settings the deployment files pass are ones the app accepts -----------------------------


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    for key in [k for k in os.environ if k.startswith("UNIPELT_") or k == "REDIS_URL"]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def test_configmap_is_accepted_by_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    data = k8s_docs()["ConfigMap", "unipelt-config"]["data"]
    settings = settings_from(data, monkeypatch)
    assert settings.redis_url == data["UNIPELT_REDIS_URL"]
    assert settings.batch_policy == data["UNIPELT_BATCH_POLICY"]


def test_compose_environment_is_accepted_by_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    env = load_yaml(ROOT / "docker-compose.yml")["services"]["unipelt"]["environment"]
    fixed = {k: v for k, v in env.items() if isinstance(v, str) and "${" not in v}
    settings = settings_from({**fixed, "UNIPELT_API_TOKEN": "t"}, monkeypatch)
    assert settings.redis_url == "redis://redis:6379/0"


# ---- the real app over HTTP ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory):
    """The app under uvicorn on the ConfigMap's settings, with an embedded Redis."""
    tmp = tmp_path_factory.mktemp("live")
    config = k8s_docs()["ConfigMap", "unipelt-config"]["data"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNIPELT_") and k != "REDIS_URL"}
    env |= {k: v for k, v in config.items() if k != "UNIPELT_REDIS_URL"}
    env |= {"UNIPELT_DATA_DIR": str(tmp / "data"), "UNIPELT_API_TOKEN": "test-token"}
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "service.main:create_app"]
    log = (tmp / "uvicorn.log").open("w")
    proc = subprocess.Popen(
        [*cmd, "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if get(base + "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail(f"app not ready:\n{(tmp / 'uvicorn.log').read_text()[-4000:]}")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.mark.service
def test_live_health_endpoints(live_app: str) -> None:
    assert get(live_app + "/healthz")[0] == 200
    assert get(live_app + "/readyz")[0] == 200


@pytest.mark.service
def test_live_metrics_pass_promtool(live_app: str) -> None:
    status, text = get(live_app + "/metrics")
    assert status == 200
    assert_ok(run(tool("promtool"), "check", "metrics", stdin=text))


@pytest.mark.service
def test_live_metrics_cover_the_dashboard(live_app: str) -> None:
    text = get(live_app + "/metrics")[1]
    live = dict(re.findall(rf"^# TYPE ({IDENT}) (\w+)$", text, re.M))
    served = {name + s for name, kind in live.items() for s in SUFFIXES.get(kind, ("",))}
    served |= {n.removesuffix("_total") + "_total" for n, k in live.items() if k == "counter"}
    for expr in dashboard_queries():
        missing = {n for n, _ in promql_names(expr)[0]} - served
        assert not missing, f"live /metrics lacks {missing} used by {expr!r}"
