"""The deploy/ tree is consistent: manifests parse, probes and resources are right, every metric
named by alerts and the dashboard exists, and the Dockerfile runs `visage-server` as non-root."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

from safety_landscape.server.metrics import REJECT_REASONS, ServerMetrics  # noqa: E402

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
K8S = DEPLOY / "k8s"
GRPC_PORT, METRICS_PORT = 50051, 9090
STARTUP_BUDGET_S = 1800
METRIC = re.compile(r"visage_[a-z_]+")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in (DEPLOY / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def _last(instruction: str) -> str:
    found = [args for kw, args in dockerfile_instructions() if kw == instruction]
    assert found, f"deploy/Dockerfile has no {instruction}"
    return found[-1]


def dockerfile_command() -> list[str]:
    """The container's command line: ENTRYPOINT + CMD of deploy/Dockerfile (both JSON arrays)."""
    entrypoint, cmd = json.loads(_last("ENTRYPOINT")), json.loads(_last("CMD"))
    assert isinstance(entrypoint, list) and isinstance(cmd, list)
    return [*entrypoint, *cmd]


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def docs_of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for p in sorted(K8S.glob("*.yaml")) for d in load_docs(p) if d.get("kind") == kind]


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs_of_kind(kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''} in deploy/k8s, found {len(found)}"
    return found[0]


def deployment() -> dict[str, Any]:
    return load_docs(K8S / "deployment.yaml")[0]


def container() -> dict[str, Any]:
    return deployment()["spec"]["template"]["spec"]["containers"][0]


def pod_labels() -> dict[str, str]:
    return deployment()["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_every_yaml_and_the_dashboard_parse() -> None:
    files = sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))
    assert len(files) >= 9
    for path in files:
        assert load_docs(path), f"{path} is empty"
    dashboard = json.loads((DEPLOY / "grafana" / "dashboard.json").read_text())
    assert dashboard["panels"] and all(p["targets"] for p in dashboard["panels"])


def test_deployment_gpu_probes_and_security() -> None:
    c, spec = container(), deployment()["spec"]["template"]["spec"]
    assert c["resources"]["requests"]["nvidia.com/gpu"] == 1 == c["resources"]["limits"]["nvidia.com/gpu"]
    startup = c["startupProbe"]
    assert startup["grpc"]["port"] == GRPC_PORT
    assert startup["failureThreshold"] * startup["periodSeconds"] >= STARTUP_BUDGET_S
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["grpc"]["port"] == GRPC_PORT, probe
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert 30 <= spec["terminationGracePeriodSeconds"] <= 600
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"grpc": GRPC_PORT, "metrics": METRICS_PORT}
    assert c["args"] == dockerfile_command()[1:], "the pod's args drift from the image's CMD"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["models"]["persistentVolumeClaim"]["claimName"] == one("PersistentVolumeClaim")["metadata"]["name"]
    assert {m["name"] for m in c["volumeMounts"]} <= set(volumes)


def test_secrets_are_referenced_and_exemplified() -> None:
    c, spec = container(), deployment()["spec"]["template"]["spec"]
    referenced: dict[str, set[str]] = {}
    for env in c["env"]:
        ref = env.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            referenced.setdefault(ref["name"], set()).add(ref["key"])
    for volume in spec["volumes"]:
        if "secret" in volume:
            keys = {i["key"] for i in volume["secret"].get("items", [])}
            referenced.setdefault(volume["secret"]["secretName"], set()).update(keys)
    assert {"visage-tokens", "visage-tls"} <= set(referenced)
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["VISAGE_TOKENS_FILE"].startswith("/etc/visage/tokens/")
    examples = {d["metadata"]["name"]: d for d in load_docs(K8S / "secret-example.yaml")}
    for name, keys in referenced.items():
        assert name in examples, f"secret {name} has no example"
        assert keys <= set(examples[name]["stringData"]), name
        assert "example" in json.dumps(examples[name]["metadata"]).lower()
    tokens_toml = examples["visage-tokens"]["stringData"]["tokens.toml"]
    assert "token_sha256" in tokens_toml and "EXAMPLE" in tokens_toml


def test_services_monitor_and_pdb_select_the_pods() -> None:
    labels = pod_labels()
    headless = one("Service", "visage-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert selects(headless["spec"]["selector"], labels)
    assert [p["port"] for p in headless["spec"]["ports"]] == [GRPC_PORT]
    service = one("Service", "visage")
    assert service["spec"].get("clusterIP") != "None" and selects(service["spec"]["selector"], labels)
    assert METRICS_PORT in {p["port"] for p in service["spec"]["ports"]}
    monitor = one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    port_names = {p["name"] for p in service["spec"]["ports"]}
    assert all(e["port"] in port_names for e in monitor["spec"]["endpoints"])
    pdb = one("PodDisruptionBudget")
    assert selects(pdb["spec"]["selector"]["matchLabels"], labels)


def test_kustomization_lists_the_manifests() -> None:
    kustomization = load_docs(K8S / "kustomization.yaml")[0]
    resources = kustomization["resources"]
    assert all((K8S / r).exists() for r in resources)
    optional = {"kustomization.yaml", "secret-example.yaml", "tls-probes-patch.yaml"}
    assert {p.name for p in K8S.glob("*.yaml")} - optional == set(resources)


def test_tls_patch_keeps_the_startup_budget() -> None:
    patch = load_docs(K8S / "tls-probes-patch.yaml")[0]["spec"]["template"]["spec"]["containers"][0]
    assert {e["name"] for e in patch["env"]} == {"VISAGE_TLS_CERT", "VISAGE_TLS_KEY", "VISAGE_TLS_CLIENT_CA"}
    startup = patch["startupProbe"]
    assert startup["failureThreshold"] * startup["periodSeconds"] >= STARTUP_BUDGET_S
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert patch[probe]["grpc"] is None and "exec" in patch[probe]


def test_alerts_and_dashboard_use_only_existing_metrics() -> None:
    known = ServerMetrics().metric_names()
    alerts = load_docs(DEPLOY / "prometheus" / "alerts.yaml")[0]
    assert alerts["kind"] == "PrometheusRule"
    rules = [r for g in alerts["spec"]["groups"] for r in g["rules"]]
    names = {r["alert"] for r in rules}
    assert {"VisageServerDown", "VisageNotServing", "VisageQueueSaturated", "VisageHighErrorRate",
            "VisageNoTokensGenerated", "VisageWeightSwitchSlow", "VisageDeviceMemoryNearLimit"} <= names
    alerted = set()  # the refusal reasons an alert watches: each is one the server counts
    for rule in rules:
        used = set(METRIC.findall(rule["expr"]))
        assert used, f"alert {rule['alert']} names no visage_ metric"
        assert used <= known, f"alert {rule['alert']}: unknown {sorted(used - known)}"
        for match in re.finditer(r'reason=~?"([^"]+)"', rule["expr"]):
            alerted |= set(match.group(1).split("|"))
    assert alerted <= set(REJECT_REASONS), sorted(alerted - set(REJECT_REASONS))
    assert {"queue_full", "tenant_queue_full", "busy"} <= alerted  # the refusals that mean "saturated"
    dashboard = (DEPLOY / "grafana" / "dashboard.json").read_text()
    used = set(METRIC.findall(dashboard))
    assert used - known == set(), sorted(used - known)
    bases = {n.removesuffix("_bucket").removesuffix("_total") for n in used}
    for wanted in ("visage_requests", "visage_request_seconds", "visage_queue_depth", "visage_generated_tokens",
                   "visage_batch_size", "visage_weight_switches", "visage_device_memory_bytes", "visage_tokens_saved"):
        assert wanted in bases, wanted


def test_dockerfile() -> None:
    instructions = dockerfile_instructions()
    base = [args for kw, args in instructions if kw == "FROM"][-1]
    assert base.startswith("nvidia/cuda:") and "runtime" in base
    user = _last("USER")
    assert user not in ("0", "root") and not user.startswith(("0:", "root"))
    assert "CMD" in _last("HEALTHCHECK") and "grpc" in _last("HEALTHCHECK")
    assert set(_last("EXPOSE").split()) == {str(GRPC_PORT), str(METRICS_PORT)}
    runs = " ".join(args for kw, args in instructions if kw == "RUN")
    assert "python3.11" in runs and "[server]" in runs
    assert "--extra-index-url https://download.pytorch.org/whl/cu124" in runs
    assert dockerfile_command() == [
        "visage-server", "--model", "/models/model", "--listen", f"0.0.0.0:{GRPC_PORT}",
        "--metrics-port", str(METRICS_PORT),
    ]


def test_the_container_command_serves(tmp_path: Path) -> None:
    """The image's ENTRYPOINT + CMD, run here with only the model path (tiny-random) and the
    addresses (loopback, free ports) replaced: it listens, turns SERVING, exports metrics, and
    exits 0 on SIGTERM. So the container's command is the one the tests run."""
    import os
    import shutil
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    from safety_landscape.client.client import Client

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    replace = {"/models/model": "tiny-random", f"0.0.0.0:{GRPC_PORT}": "127.0.0.1:0", str(METRICS_PORT): str(free_port())}
    command = [replace.get(arg, arg) for arg in dockerfile_command()]
    assert command[0] == "visage-server" and command.count("tiny-random") == 1 and "127.0.0.1:0" in command
    executable = shutil.which("visage-server", path=str(Path(sys.executable).parent)) or shutil.which("visage-server")
    assert executable, "the visage-server console script is not installed"
    port_file = tmp_path / "port"
    env = {**os.environ, "VISAGE_LOG_FORMAT": "json", "VISAGE_DEVICE": "cpu"}  # the image sets VISAGE_LOG_FORMAT=json
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen([executable, *command[1:], "--port-file", str(port_file)], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while not (port_file.exists() and port_file.read_text().strip()):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.05)
        with Client(f"127.0.0.1:{port_file.read_text().strip()}") as c:
            c.wait_until_serving(120)
            assert c.info().model_name == "tiny-random"
        metrics_port = command[command.index("--metrics-port") + 1]
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
            assert "visage_serving 1.0" in response.read().decode()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, (tmp_path / "server.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
