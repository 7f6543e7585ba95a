"""The Helm chart: lint, rendered objects, toggles and the values schema.

Runs the real helm binary (dev/install-helm.sh builds it): $HELM, else the
project cache, else helm on PATH. Without one the module is skipped, except on
CI, where a missing helm is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream.attributes import ATTRIBUTES
from stream.settings import from_env

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "engagement-stream"
SCENARIOS = sorted(path.name for path in (CHART / "ci").glob("*-values.yaml"))
CACHE_DIR = (
    os.environ.get("ES_CACHE_DIR") or Path.home() / ".cache" / "engagement-stream"
)
CACHED_HELM = Path(CACHE_DIR) / "bin" / "helm"
RELEASE = "es"

# Chart copies of files that live under monitoring/ (a chart cannot read
# files outside its own directory).
COPIES = {
    "files/alerts.yml": "monitoring/prometheus/alerts.yml",
    "files/engagement-stream.json": "monitoring/grafana/engagement-stream.json",
}


def find_helm() -> str | None:
    candidates = [os.environ.get("HELM"), str(CACHED_HELM), shutil.which("helm")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


HELM = find_helm()
if HELM is None:
    reason = "helm not found: run dev/install-helm.sh or set HELM to a helm binary"
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    assert HELM is not None
    return subprocess.run(
        [HELM, *args], capture_output=True, text=True, timeout=120, check=False
    )


def render(
    tmp_path: Path, values: dict[str, Any] | None = None, scenario: str = ""
) -> list[dict[str, Any]]:
    """The objects `helm template` renders for a scenario plus extra values."""
    args = ["template", RELEASE, str(CHART)]
    if scenario:
        args += ["-f", str(CHART / "ci" / scenario)]
    if values:
        extra = tmp_path / "extra-values.yaml"
        extra.write_text(yaml.safe_dump(values))
        args += ["-f", str(extra)]
    result = helm(*args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = [obj for obj in objects if obj["kind"] == kind]
    return found


def kinds(objects: list[dict[str, Any]]) -> set[str]:
    return {obj["kind"] for obj in objects}


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    [worker] = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return worker


def config_data(objects: list[dict[str, Any]]) -> dict[str, str]:
    [config] = [
        obj
        for obj in objects
        if obj["kind"] == "ConfigMap" and "dashboard" not in obj["metadata"]["name"]
    ]
    return config["data"]


def test_scenarios_cover_the_documented_set_ups() -> None:
    assert SCENARIOS == [
        "default-values.yaml",
        "hpa-on-values.yaml",
        "monitoring-on-values.yaml",
        "sasl-scram-values.yaml",
        "tls-values.yaml",
    ]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_lint_strict(scenario: str) -> None:
    result = helm("lint", "--strict", str(CHART), "-f", str(CHART / "ci" / scenario))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_template_renders(tmp_path: Path, scenario: str) -> None:
    # helm lint reports a template's `fail` only as a log line; rendering fails.
    assert render(tmp_path, scenario=scenario)


@pytest.mark.parametrize(("copy", "original"), COPIES.items())
def test_chart_copies_equal_the_monitoring_originals(copy: str, original: str) -> None:
    assert (ROOT / original).is_file(), f"{original} is missing"
    assert (CHART / copy).is_file(), (
        f"run: cp {original} charts/engagement-stream/{copy}"
    )
    assert (CHART / copy).read_bytes() == (ROOT / original).read_bytes(), (
        f"{copy} is stale; run: cp {original} charts/engagement-stream/{copy}"
    )


def test_pod_runs_non_root_on_a_read_only_root_filesystem(tmp_path: Path) -> None:
    objects = render(tmp_path)
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    security = container(objects)["securityContext"]

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert security["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False


def test_writable_paths_are_empty_dirs(tmp_path: Path) -> None:
    objects = render(tmp_path)
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {
        mount["mountPath"]: mount["name"]
        for mount in container(objects)["volumeMounts"]
    }

    data_dir = config_data(objects)["ES_DATA_DIR"]
    for path in ("/tmp", data_dir):
        assert "emptyDir" in volumes[mounts[path]], path


def test_probes_use_the_http_port_of_the_settings(tmp_path: Path) -> None:
    objects = render(tmp_path, {"config": {"httpPort": 9100}})
    worker = container(objects)
    [port] = worker["ports"]
    service = only(objects, "Service")["spec"]

    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert port == {"name": "http", "containerPort": 9100, "protocol": "TCP"}
    assert config_data(objects)["ES_HTTP_PORT"] == "9100"
    assert service["ports"][0]["targetPort"] == "http"


@pytest.mark.parametrize(
    "scenario", ["monitoring-on-values.yaml", "hpa-on-values.yaml"]
)
def test_selectors_match_pods_without_version_labels(
    tmp_path: Path, scenario: str
) -> None:
    objects = render(tmp_path, scenario=scenario)
    pod_labels = only(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    selected = ("Deployment", "Service", "PodDisruptionBudget", "ServiceMonitor")
    selectors = [
        obj["spec"]["selector"].get("matchLabels", obj["spec"]["selector"])
        for obj in objects
        if obj["kind"] in selected
    ]

    assert len(selectors) >= 3
    for selector in selectors:
        assert selector == {
            "app.kubernetes.io/name": "engagement-stream",
            "app.kubernetes.io/instance": RELEASE,
        }
        assert selector.items() <= pod_labels.items()
    assert "app.kubernetes.io/version" in pod_labels


OPTIONAL_OBJECTS = [
    ("serviceMonitor", "ServiceMonitor"),
    ("prometheusRule", "PrometheusRule"),
    ("autoscaling", "HorizontalPodAutoscaler"),
    ("podDisruptionBudget", "PodDisruptionBudget"),
]


@pytest.mark.parametrize(("key", "kind"), OPTIONAL_OBJECTS)
def test_toggles_add_and_remove_objects(tmp_path: Path, key: str, kind: str) -> None:
    on = render(tmp_path, {key: {"enabled": True}})
    off = render(tmp_path, {key: {"enabled": False}})

    assert kind in kinds(on)
    assert kind not in kinds(off)


def test_defaults_leave_operator_objects_and_autoscaling_off(tmp_path: Path) -> None:
    default = kinds(render(tmp_path))

    assert default == {
        "ServiceAccount",
        "ConfigMap",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
    }


def test_dashboard_config_map_carries_the_sidecar_label(tmp_path: Path) -> None:
    def dashboards(enabled: bool) -> list[dict[str, Any]]:
        objects = render(tmp_path, {"grafanaDashboard": {"enabled": enabled}})
        return [
            obj for obj in objects if obj["metadata"]["name"].endswith("-dashboard")
        ]

    [dashboard] = dashboards(True)
    original = (ROOT / COPIES["files/engagement-stream.json"]).read_text()

    assert dashboards(False) == []
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["data"]["engagement-stream.json"] == original.rstrip("\n")


def test_prometheus_rule_holds_the_alert_rules(tmp_path: Path) -> None:
    rule = only(
        render(tmp_path, scenario="monitoring-on-values.yaml"), "PrometheusRule"
    )
    original = yaml.safe_load((ROOT / COPIES["files/alerts.yml"]).read_text())

    assert rule["spec"]["groups"] == original["groups"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_autoscaling_drops_the_fixed_replica_count(tmp_path: Path) -> None:
    objects = render(tmp_path, scenario="hpa-on-values.yaml")
    hpa = only(objects, "HorizontalPodAutoscaler")["spec"]

    assert "replicas" not in only(objects, "Deployment")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    assert "partition" in (CHART / "templates" / "NOTES.txt").read_text()
    assert "idle" in (CHART / "values.yaml").read_text()


def checksum(objects: list[dict[str, Any]]) -> str:
    template = only(objects, "Deployment")["spec"]["template"]
    return template["metadata"]["annotations"]["checksum/config"]


def test_config_checksum_changes_only_with_the_config(tmp_path: Path) -> None:
    base = checksum(render(tmp_path))

    assert checksum(render(tmp_path, {"config": {"logLevel": "DEBUG"}})) != base
    assert checksum(render(tmp_path, {"kafka": {"bootstrapServers": "b:9092"}})) != base
    assert checksum(render(tmp_path, {"resources": {"limits": {"cpu": "1"}}})) == base


def test_config_map_reads_back_as_the_configured_settings(tmp_path: Path) -> None:
    values = {
        "kafka": {"bootstrapServers": "a:9092,b:9092"},
        "config": {
            "topicPrefix": "prod.",
            "inputApiVersion": 2,
            "attributeTopics": {"CART_STATUS": "carts"},
            "schemaVersions": {"PURCHASE": 1},
            "dedupeRetentionSeconds": 2592000,
            "logLevel": "DEBUG",
        },
    }
    settings = from_env(config_data(render(tmp_path, values)))

    assert settings.bootstrap_servers == "a:9092,b:9092"
    assert settings.input_topic_name == "prod.conversations"
    assert settings.input_api_version == 2
    assert settings.attribute_topic_name("cartStatus") == "prod.carts"
    assert settings.published_versions == {"purchase": 1}
    assert settings.dedupe_retention_seconds == 2592000
    assert settings.log_level == "DEBUG"
    assert settings.security.protocol == "PLAINTEXT"


def secret_env(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {var["name"]: var for var in container(objects).get("env", [])}


def test_sasl_credentials_come_only_from_secret_key_refs(tmp_path: Path) -> None:
    objects = render(tmp_path, scenario="sasl-scram-values.yaml")
    env = secret_env(objects)
    data = config_data(objects)

    assert "Secret" not in kinds(objects)
    for name in ("KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"):
        assert "value" not in env[name]
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "engagement-stream-kafka-user"
        assert name not in data
    # In the pod the two secret references fill in the credentials.
    settings = from_env(
        {**data, "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}
    )
    assert settings.security.protocol == "SASL_SSL"
    assert settings.security.sasl_mechanism == "SCRAM-SHA-512"


def test_tls_files_are_mounted_from_the_secret(tmp_path: Path) -> None:
    objects = render(tmp_path, scenario="tls-values.yaml")
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    [tls] = [volume for volume in pod["volumes"] if "secret" in volume]
    mounts = {mount["name"]: mount for mount in container(objects)["volumeMounts"]}
    security = from_env(config_data(objects)).security
    directory = mounts[tls["name"]]["mountPath"]

    assert tls["secret"]["secretName"] == "engagement-stream-kafka-tls"
    assert mounts[tls["name"]]["readOnly"] is True
    projected = {f"{directory}/{item['path']}" for item in tls["secret"]["items"]}
    assert projected == {
        security.ssl_cafile,
        security.ssl_certfile,
        security.ssl_keyfile,
    }
    password = secret_env(objects)["KAFKA_SSL_KEY_PASSWORD"]
    assert set(password) == {"name", "valueFrom"}
    assert password["valueFrom"]["secretKeyRef"]["key"] == "key-password"


def test_no_rendered_env_var_holds_a_secret_value(tmp_path: Path) -> None:
    for scenario in SCENARIOS:
        objects = render(tmp_path, scenario=scenario)
        for name, var in secret_env(objects).items():
            if "PASSWORD" in name or "USERNAME" in name:
                assert "secretKeyRef" in var["valueFrom"], (scenario, name)
        assert not any("PASSWORD" in key for key in config_data(objects))


def test_schema_lists_exactly_the_attribute_types() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    config = schema["properties"]["config"]["properties"]
    sde_types = [spec.sde_type for spec in ATTRIBUTES.values()]

    for key in ("attributeTopics", "schemaVersions"):
        assert config[key]["propertyNames"]["enum"] == sde_types


INVALID_VALUES = [
    # (flags, where the schema error points, test id)
    (["--set", "kafka.securityProtocol=TLS"], "/kafka/securityProtocol", "protocol"),
    (["--set", "kafka.sasl.mechanism=GSSAPI"], "/kafka/sasl/mechanism", "mechanism"),
    (["--set-string", "replicaCount=2"], "/replicaCount", "replicas-as-string"),
    (["--set", "replicaCount=-1"], "/replicaCount", "negative-replicas"),
    (["--set", "kafka.bootstrapServers="], "/kafka/bootstrapServers", "no-servers"),
    (["--set", "config.logLevel=VERBOSE"], "/config/logLevel", "log-level"),
    (["--set", "config.inputApiVersion=3"], "/config/inputApiVersion", "api-version"),
    # helm 4.3.2 prints a wrong path for propertyName errors; match the name.
    (["--set", "config.attributeTopics.CART=x"], "propertyName 'CART'", "attr"),
    (["--set", "config.inputTopic=a topic"], "/config/inputTopic", "topic-name"),
    (["--set", "replicas=2"], "additional properties 'replicas'", "unknown-key"),
    (["--set", "kafka.sasl.password=x"], "'password' not allowed", "password-value"),
    (["--set", "podSecurityContext.runAsNonRoot=false"], "runAsNonRoot", "root"),
    (
        ["--set", "kafka.securityProtocol=SASL_SSL"],
        "/kafka/sasl/existingSecret",
        "sasl-without-secret",
    ),
]


@pytest.mark.parametrize(
    ("args", "where"),
    [pytest.param(args, where, id=name) for args, where, name in INVALID_VALUES],
)
def test_schema_rejects_invalid_values(args: list[str], where: str) -> None:
    result = helm("template", RELEASE, str(CHART), *args)

    assert result.returncode != 0
    assert "schema" in result.stderr
    assert where in result.stderr, result.stderr
