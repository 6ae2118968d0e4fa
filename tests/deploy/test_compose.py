"""docker-compose.yml, Dockerfile and the Prometheus/collector configs, checked
without a Docker engine (none runs here; `docker compose config` needs the
compose plugin, which is absent too)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from nodedrop.common.metrics import DEFAULT_METRICS_ADDRS, create_metrics, parse_listen_addr
from nodedrop.common.settings import (
    DEFAULT_API_ADDR,
    DEFAULT_EVENTS_ADDR,
    DEFAULT_GATEWAY_ADDR,
    DEFAULT_SCHEDULER_ADDR,
    DEFAULT_WORKER_ADDR,
    Address,
    ServerSettings,
)

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("api", "scheduler", "events", "worker", "gateway")
LISTEN = {
    "api": ("NODEDROP_API_ADDR", DEFAULT_API_ADDR),
    "scheduler": ("NODEDROP_SCHEDULER_ADDR", DEFAULT_SCHEDULER_ADDR),
    "events": ("NODEDROP_EVENTS_ADDR", DEFAULT_EVENTS_ADDR),
    "worker": ("NODEDROP_WORKER_ADDR", DEFAULT_WORKER_ADDR),
    "gateway": ("NODEDROP_GATEWAY_ADDR", DEFAULT_GATEWAY_ADDR),
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_has_every_part(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {
        *SERVICES,
        "redis",
        "postgres",
        "otel-collector",
        "jaeger",
        "prometheus",
    }


@pytest.mark.parametrize("name", SERVICES)
def test_service_listens_where_its_settings_and_prometheus_expect(
    compose: dict[str, Any], name: str
) -> None:
    service = compose["services"][name]
    env = service["environment"]
    assert service["command"] == [name]
    var, default = LISTEN[name]
    listen = Address.parse(env[var])
    assert listen.host == "0.0.0.0"
    assert listen.port == Address.parse(default).port
    metrics_host, metrics_port = parse_listen_addr(env["NODEDROP_METRICS_ADDR"])
    assert metrics_host == "0.0.0.0"
    assert metrics_port == parse_listen_addr(DEFAULT_METRICS_ADDRS[name])[1]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4317"
    assert env["OTEL_SERVICE_NAME"] == f"nodedrop-{name}"
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]


def test_worker_scales_and_drains(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    # --scale refuses services with a fixed name or published host ports.
    assert "container_name" not in worker
    assert "ports" not in worker
    grace = ServerSettings.from_env(worker["environment"], Address.parse("0.0.0.0:0"))
    stop = re.fullmatch(r"(\d+)s", worker["stop_grace_period"])
    assert stop is not None
    assert int(stop.group(1)) > grace.shutdown_grace_s


def test_prometheus_scrapes_every_service() -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets: set[str] = set()
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            targets.update(static["targets"])
        for dns in job.get("dns_sd_configs", []):
            targets.update(f"{n}:{dns['port']}" for n in dns["names"])
    expected = {f"{name}:{parse_listen_addr(DEFAULT_METRICS_ADDRS[name])[1]}" for name in SERVICES}
    assert targets == expected


def test_alert_rules_use_exported_metrics() -> None:
    exported = {f.name for f in create_metrics(CollectorRegistry()).registry.collect()}
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            for name in re.findall(r"nodedrop_[a-z_]+", rule["expr"]):
                base = re.sub(r"_(total|bucket|count|sum)$", "", name)
                assert base in exported, f"{rule['alert']} uses unknown metric {name}"


def test_collector_sends_traces_to_jaeger() -> None:
    config = yaml.safe_load((ROOT / "deploy/otel-collector/config.yaml").read_text())
    pipeline = config["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    (exporter,) = pipeline["exporters"]
    assert config["exporters"][exporter]["endpoint"] == "jaeger:4317"


def test_dockerfile_targets_and_user() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, re.MULTILINE)
    assert {"build", "runtime", *SERVICES} <= set(stages)
    assert re.search(r"^FROM python:3\.11-slim|^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.M)
    assert re.search(r"^USER 10001:10001$", text, re.MULTILINE)
    assert 'ENTRYPOINT ["nodedrop"]' in text
    for name in SERVICES:
        block = text.split(f"AS {name}\n", 1)[1].split("FROM ", 1)[0]
        assert f'CMD ["{name}"]' in block


def test_grafana_dashboard_queries_exported_metrics() -> None:
    exported = {f.name for f in create_metrics(CollectorRegistry()).registry.collect()}
    dashboard = json.loads((ROOT / "deploy/grafana/nodedrop.json").read_text())
    used: set[str] = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            used.update(re.findall(r"nodedrop_[a-z_]+", target["expr"]))
    bases = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in used}
    assert bases <= exported
    # Every metric of the issue is on the dashboard.
    assert exported <= bases


def test_only_the_api_and_the_gateway_are_published(compose: dict[str, Any]) -> None:
    published = {
        name: service["ports"]
        for name, service in compose["services"].items()
        if "ports" in service
    }
    assert published.pop("api") == ["50051:50051"]
    assert published.pop("gateway") == ["8080:8080"]
    # Whatever else is published (the Jaeger and Prometheus UIs) listens on
    # the host's loopback only.
    for name, ports in published.items():
        assert name not in SERVICES
        assert all(str(p).startswith("127.0.0.1:") for p in ports), (name, ports)


@pytest.mark.parametrize("name", SERVICES)
def test_service_credential_comes_from_a_secret(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    assert service["secrets"] == ["nodedrop_service_token"]
    env = service["environment"]
    assert env["NODEDROP_SERVICE_TOKEN_FILE"] == "/run/secrets/nodedrop_service_token"
    assert "NODEDROP_SERVICE_TOKEN" not in env
    assert compose["secrets"]["nodedrop_service_token"] == {"environment": "NODEDROP_SERVICE_TOKEN"}
