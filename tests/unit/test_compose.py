"""The local stack: docker-compose.yml, the Dockerfile and Grafana provisioning.

Nothing here needs a Docker engine: the files are parsed and checked against the
repository and against the CLI and settings they drive.
"""

from __future__ import annotations

import json
import re
import shlex
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream.settings import from_env

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PROVISIONING = ROOT / "monitoring" / "grafana" / "provisioning"

SERVICES = ("kafka", "topics", "worker", "replay", "prometheus", "grafana")
PROBED = ("kafka", "worker", "prometheus", "grafana")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def env_of(service: dict[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in service.get("environment", {}).items()}


def host_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of every bind mount of a service."""
    mounts = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append((source, target))
    return mounts


def test_every_service_is_defined(services: dict[str, Any]) -> None:
    assert set(SERVICES) <= set(services)


def test_images_are_pinned(services: dict[str, Any]) -> None:
    for name, service in services.items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag, f"{name}: {image!r} has no tag"
        assert tag != "latest", f"{name}: {image!r} is not pinned"
        if "build" not in service and service["image"] != services["topics"]["image"]:
            assert re.search(r"\d+\.\d+\.\d+", tag), f"{name}: {image!r} not exact"


def test_kafka_is_the_pinned_apache_image_in_kraft_mode(
    services: dict[str, Any],
) -> None:
    kafka = services["kafka"]
    env = env_of(kafka)

    assert kafka["image"] == "apache/kafka:4.1.1"
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"


def test_the_engagement_stream_image_is_built_once_and_shared(
    services: dict[str, Any],
) -> None:
    built = [name for name, service in services.items() if "build" in service]
    assert built == ["topics"]
    image = services["topics"]["image"]
    for name in ("worker", "replay"):
        assert services[name]["image"] == image


@pytest.mark.parametrize("name", PROBED)
def test_long_running_services_have_healthchecks(
    services: dict[str, Any], name: str
) -> None:
    test = services[name]["healthcheck"]["test"]
    assert test[0] in ("CMD", "CMD-SHELL")


def test_depends_on_always_names_a_condition_the_dependency_can_meet(
    services: dict[str, Any],
) -> None:
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], (name, dependency)
            else:
                assert condition == "service_completed_successfully"
                assert services[dependency].get("restart") == "no"


@pytest.mark.parametrize(
    ("service", "dependency", "condition"),
    [
        ("topics", "kafka", "service_healthy"),
        ("worker", "topics", "service_completed_successfully"),
        ("replay", "worker", "service_healthy"),
        ("grafana", "prometheus", "service_healthy"),
    ],
)
def test_start_order_conditions(
    services: dict[str, Any], service: str, dependency: str, condition: str
) -> None:
    assert services[service]["depends_on"][dependency]["condition"] == condition


def test_start_order_puts_topics_between_kafka_and_worker(
    services: dict[str, Any],
) -> None:
    graph = {name: set(s.get("depends_on", {})) for name, s in services.items()}
    order = list(TopologicalSorter(graph).static_order())

    assert order.index("kafka") < order.index("topics") < order.index("worker")
    assert order.index("worker") < order.index("replay")


def test_replay_runs_only_on_demand(services: dict[str, Any]) -> None:
    assert services["replay"]["profiles"] == ["replay"]
    assert all("profiles" not in s for n, s in services.items() if n != "replay")


@pytest.mark.parametrize("name", SERVICES)
def test_mounted_host_paths_exist(services: dict[str, Any], name: str) -> None:
    for source, _ in host_mounts(services[name]):
        assert (ROOT / source).exists(), f"{name} mounts {source}, which is missing"


def test_published_ports_are_bound_to_loopback(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def advertised_listeners(kafka: dict[str, Any]) -> dict[str, str]:
    """Listener name -> host:port as advertised by the broker."""
    listeners = env_of(kafka)["KAFKA_ADVERTISED_LISTENERS"].split(",")
    return dict(item.split("://") for item in listeners)


@pytest.mark.parametrize("name", ["topics", "worker", "replay"])
def test_clients_use_the_internal_listener(services: dict[str, Any], name: str) -> None:
    kafka = services["kafka"]
    internal = advertised_listeners(kafka)[
        env_of(kafka)["KAFKA_INTER_BROKER_LISTENER_NAME"]
    ]
    published = {str(port).split(":")[-1] for port in kafka["ports"]}

    assert env_of(services[name])["KAFKA_BOOTSTRAP_SERVERS"] == internal
    assert internal.split(":")[0] == "kafka"
    assert internal.split(":")[1] not in published


def test_host_listener_is_published_and_advertised_as_localhost(
    services: dict[str, Any],
) -> None:
    kafka = services["kafka"]
    host_listeners = [
        address
        for address in advertised_listeners(kafka).values()
        if address.startswith("localhost:")
    ]
    assert len(host_listeners) == 1
    port = host_listeners[0].split(":")[1]
    assert f"127.0.0.1:{port}:{port}" in kafka["ports"]


def test_topics_service_creates_every_topic_including_dead_letters(
    services: dict[str, Any],
) -> None:
    topics = services["topics"]
    settings = from_env(env_of(topics))

    assert topics["command"][:2] == ["topics", "create"]
    assert settings.dead_letter_topic_name in settings.all_topic_names()
    # The worker must write dead letters to the topic that was created.
    worker = from_env(env_of(services["worker"]))
    assert worker.dead_letter_topic_name == settings.dead_letter_topic_name
    assert worker.input_topic_name == settings.input_topic_name


def test_worker_matches_the_image_and_kubernetes_constraints(
    services: dict[str, Any],
) -> None:
    worker = services["worker"]
    settings = from_env(env_of(worker))

    assert worker["command"] == ["worker"]
    assert worker["read_only"] is True
    assert "/tmp" in worker["tmpfs"]
    assert f"127.0.0.1:{settings.http_port}:{settings.http_port}" in worker["ports"]
    assert f":{settings.http_port}/readyz" in " ".join(worker["healthcheck"]["test"])
    mounted = [volume.split(":")[1] for volume in worker["volumes"]]
    assert dockerfile_env()["ES_DATA_DIR"] in mounted


def cli_commands(services: dict[str, Any]) -> list[list[str]]:
    """Every engagement-stream command line the stack runs."""
    commands = [services[name]["command"] for name in ("topics", "worker")]
    script = " ".join(services["replay"]["command"])
    for part in script.split("&&"):
        words = shlex.split(part)
        assert words[0] == "engagement-stream"
        commands.append(words[1:])
    return commands


def test_commands_parse_with_the_cli(services: dict[str, Any]) -> None:
    from stream.cli import build_parser

    parser = build_parser()
    for command in cli_commands(services):
        parser.parse_args(command)


def test_replay_reads_both_sample_files_from_the_mount(
    services: dict[str, Any],
) -> None:
    replay = services["replay"]
    [(source, target)] = host_mounts(replay)
    script = " ".join(replay["command"])

    for version in (1, 2):
        path = f"{target}/records-v{version}.jsonl"
        assert f"{path} --api-version {version}" in script
        assert (ROOT / source / f"records-v{version}.jsonl").is_file()


def test_prometheus_loads_the_monitoring_directory(services: dict[str, Any]) -> None:
    prometheus = services["prometheus"]
    [(source, target)] = host_mounts(prometheus)
    flags = dict(flag.split("=", 1) for flag in prometheus["command"])
    directory = ROOT / source

    assert source == "./monitoring/prometheus"
    assert flags["--config.file"] == f"{target}/prometheus.yml"
    for name in ("prometheus.yml", "alerts.yml"):
        assert (directory / name).is_file(), f"monitoring/prometheus/{name} missing"


def test_prometheus_scrapes_the_worker_and_loads_the_alerts(
    services: dict[str, Any],
) -> None:
    config_file = ROOT / "monitoring" / "prometheus" / "prometheus.yml"
    assert config_file.is_file(), "monitoring/prometheus/prometheus.yml missing"
    config = yaml.safe_load(config_file.read_text())
    port = from_env(env_of(services["worker"])).http_port

    targets = [
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    ]
    assert f"worker:{port}" in targets
    rule_files = [Path(rule).name for rule in config.get("rule_files", [])]
    assert "alerts.yml" in rule_files


def test_grafana_data_source_points_at_the_prometheus_service(
    services: dict[str, Any],
) -> None:
    provisioning = yaml.safe_load(
        (PROVISIONING / "datasources" / "prometheus.yml").read_text()
    )
    [source] = provisioning["datasources"]
    published = services["prometheus"]["ports"][0].split(":")[-1]

    assert source["type"] == "prometheus"
    assert source["url"] == f"http://prometheus:{published}"
    assert source["isDefault"] is True


def test_grafana_provisions_the_mounted_dashboard(services: dict[str, Any]) -> None:
    grafana = services["grafana"]
    mounts = dict(host_mounts(grafana))
    provisioning = yaml.safe_load(
        (PROVISIONING / "dashboards" / "engagement-stream.yml").read_text()
    )
    [provider] = provisioning["providers"]
    dashboard = mounts["./monitoring/grafana/engagement-stream.json"]

    assert mounts["./monitoring/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert str(Path(dashboard).parent) == provider["options"]["path"]
    assert env_of(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == dashboard


def dockerfile_env() -> dict[str, str]:
    """ENV settings of the Dockerfile's final stage (continuation lines joined)."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    final = text.split("\nFROM ")[-1]
    env: dict[str, str] = {}
    for line in final.splitlines():
        if line.startswith("ENV "):
            for pair in shlex.split(line[4:]):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def dockerfile_instruction(name: str) -> str:
    """Arguments of the last instruction called name."""
    lines = [
        line for line in DOCKERFILE.read_text().splitlines() if line.startswith(name)
    ]
    return lines[-1][len(name) :].strip()


def test_dockerfile_base_image_is_a_pinned_slim_python_311() -> None:
    base = dockerfile_instruction("ARG PYTHON_IMAGE=")
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+", base), base


def test_dockerfile_runs_the_cli_as_a_fixed_non_root_user() -> None:
    uid = dockerfile_instruction("ARG APP_UID=")

    assert int(uid) >= 1000
    assert dockerfile_instruction("USER") == "${APP_UID}:${APP_UID}"
    assert dockerfile_instruction("ENTRYPOINT") == '["engagement-stream"]'
    assert dockerfile_instruction("CMD") == '["worker"]'
    assert dockerfile_instruction("EXPOSE") == "8080"


def test_dockerfile_ships_the_schemas_and_a_data_volume() -> None:
    env = dockerfile_env()

    assert f"COPY schemas {env['ES_SCHEMA_DIR']}" in DOCKERFILE.read_text()
    assert dockerfile_instruction("VOLUME") == f'["{env["ES_DATA_DIR"]}"]'
    assert env["ES_HTTP_PORT"] == "8080"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"


def test_dockerignore_admits_only_what_the_image_needs() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    admitted = {line[1:].rstrip("/") for line in lines if line.startswith("!")}

    copies = [
        line.split()[1:-1]
        for line in DOCKERFILE.read_text().splitlines()
        if line.startswith("COPY ") and "--from" not in line
    ]

    assert "*" in lines
    assert admitted == {"pyproject.toml", "README.md", "stream", "schemas"}
    assert admitted == {path for sources in copies for path in sources}


def test_dashboard_data_sources_resolve_in_the_stack() -> None:
    text = (ROOT / "monitoring" / "grafana" / "engagement-stream.json").read_text()
    provisioning = yaml.safe_load(
        (PROVISIONING / "datasources" / "prometheus.yml").read_text()
    )
    provisioned = {source["uid"] for source in provisioning["datasources"]}
    own_uid = json.loads(text).get("uid")

    # "${variable}" is a data source variable, which defaults to the default source.
    uids = set(re.findall(r'"uid":\s*"([^"$][^"]*)"', text)) - {own_uid}
    assert uids <= provisioned
