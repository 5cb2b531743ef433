"""docker-compose.yml and the Dockerfile, checked without a Docker engine: the YAML parses and
validates against the Compose Specification's JSON schema, and the parts fit together.

compose_spec.json is the Compose Specification schema as shipped in docker-compose 1.29.2
(PyPI, Apache-2.0); it predates the top-level `name`, which is checked here separately.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

from shared.config import PROJECT_ROOT, Settings

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
CANDLECAST = ("ingestor", "predictor", "trainer", "gateway")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_compose_file_validates_against_the_compose_schema(compose: dict[str, Any]) -> None:
    schema = json.loads(Path(__file__).with_name("compose_spec.json").read_text())
    document = {k: v for k, v in compose.items() if k != "name"}
    errors = [f"{'/'.join(map(str, e.instance_path))}: {e.message}"
              for e in jsonschema_rs.validator_for(schema).iter_errors(document)]
    assert not errors, "\n".join(errors)
    assert compose["name"] == "candlecast"


def test_all_parts_are_there(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"kafka", "kafka-2", "kafka-3", "postgres", "migrate", *CANDLECAST, "prometheus",
                             "grafana", "kafka-ui"}
    # The second and third brokers only with the three-broker profile, configured as the first.
    assert services["kafka-2"]["profiles"] == services["kafka-3"]["profiles"] == ["brokers3"]
    assert "profiles" not in services["kafka"]
    for name in ("kafka-2", "kafka-3"):
        env, first = services[name]["environment"], services["kafka"]["environment"]
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == first["KAFKA_CONTROLLER_QUORUM_VOTERS"]
        assert env["CLUSTER_ID"] == first["CLUSTER_ID"]
        assert env["KAFKA_NODE_ID"] == int(name[-1])
    three = dict(line.split("=", 1) for line in (PROJECT_ROOT / "deploy" / "compose" / "brokers3.env").read_text()
                 .splitlines() if line and not line.startswith("#"))
    assert three["KAFKA_QUORUM_VOTERS"] == "1@kafka:9093,2@kafka-2:9093,3@kafka-3:9093"
    assert three["KAFKA_BROKERS"] == "3" and three["KAFKA_MIN_ISR"] == "2"
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    for name in (*CANDLECAST, "migrate"):
        service = services[name]
        assert service["image"] == "candlecast:latest", name
        assert service["build"]["dockerfile"] == "Dockerfile", name
        assert service["environment"]["CANDLECAST_KAFKA_BOOTSTRAP"] == "${KAFKA_BOOTSTRAP:-kafka:9092}"
        assert "models:/data/models" in service["volumes"]
    assert [services[n]["command"] for n in CANDLECAST] == [[n] for n in CANDLECAST]
    assert services["migrate"]["command"] == ["migrate"] and services["migrate"]["restart"] == "no"


def test_health_checks_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        if name != "migrate":
            assert "healthcheck" in service, f"{name} has no health check"
        for dependency, how in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if how["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}'s health check"
    for name in CANDLECAST:
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["kafka"]["condition"] == depends["postgres"]["condition"] == "service_healthy"
    settings = Settings()
    ports = {"ingestor": settings.ingestor_metrics_port, "predictor": settings.predictor_metrics_port,
             "trainer": settings.trainer_metrics_port, "gateway": settings.gateway_port}
    for name, port in ports.items():
        assert f"127.0.0.1:{port}/" in " ".join(services[name]["healthcheck"]["test"]), name


def test_volumes_bind_mounts_and_variables(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    assert {"kafka-data", "postgres-data", "models"} <= declared
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (PROJECT_ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"
    example = (PROJECT_ROOT / ".env.example").read_text()
    for variable in set(re.findall(r"\$\{([A-Z_]+)", COMPOSE.read_text())):
        assert re.search(rf"^{variable}=", example, re.M), f"{variable} is not in .env.example"


def test_prometheus_scrapes_the_compose_services(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((PROJECT_ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    for job in config["scrape_configs"]:
        for target in job["static_configs"][0]["targets"]:
            host = target.split(":")[0]
            assert host == "localhost" or host in compose["services"], target


def test_dockerfile_is_multi_stage_and_runs_unprivileged() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", text, re.M)
    assert stages == ["build", "runtime"]
    runtime = text.split("AS runtime", 1)[1]
    assert "COPY --from=build /opt/venv /opt/venv" in runtime
    user = re.findall(r"^USER\s+(\S+)", runtime, re.M)
    assert user and user[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["candlecast"]' in runtime
    ignored = {line.strip() for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for source in re.findall(r"^COPY\s+(?!--from)(.+)\s+\S+$", text, re.M):
        for part in source.split():
            assert (PROJECT_ROOT / part).exists(), f"COPY {part}: missing"
            assert part.rstrip("/") not in ignored, f"COPY {part}: excluded by .dockerignore"
