"""The commands and the worker against secured brokers, configured by environment.

Each broker has one secured client listener (SASL with SCRAM in plain text,
SASL with SCRAM over TLS, TLS alone). ``topics create``, ``replay`` and the
worker get nothing but the documented KAFKA_* variables; what the worker
publishes is read back over the same listener. Wrong or missing credentials
must end the worker with a non-zero exit and a log that names the cause.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.devbroker import SASL_PASSWORD, DevBroker
from tests.integration.worker_harness import (
    Deployment,
    as_multiset,
    by_label,
    corpus_lines,
    expected_events,
    http_get,
    scrape,
)

# Security protocol -> SASL mechanism its test uses (None: TLS without SASL).
MECHANISMS = {
    "SASL_PLAINTEXT": "SCRAM-SHA-256",
    "SASL_SSL": "SCRAM-SHA-512",
    "SSL": None,
}
RECORDS = 4
BROKER_TIMEOUT_SECONDS = 10


# One broker per protocol, shared by its tests; pytest runs the tests of one
# parameter together and stops that broker before it starts the next.
@pytest.fixture(scope="module", params=list(MECHANISMS))
def secured_broker(request: pytest.FixtureRequest) -> Iterator[DevBroker]:
    with DevBroker(security_protocol=request.param) as broker:
        yield broker


def security_env(broker: DevBroker) -> dict[str, str]:
    """The documented variables that reach the broker's listener."""
    mechanism = MECHANISMS[broker.security_protocol]
    security = broker.security(mechanism or "SCRAM-SHA-256")
    env = {"KAFKA_SECURITY_PROTOCOL": security.protocol}
    if security.uses_sasl:
        env["KAFKA_SASL_MECHANISM"] = str(security.sasl_mechanism)
        env["KAFKA_SASL_USERNAME"] = str(security.sasl_username)
        env["KAFKA_SASL_PASSWORD"] = str(security.sasl_password)
    if security.uses_ssl:
        env["KAFKA_SSL_CAFILE"] = str(security.ssl_cafile)
    return env


def secured_deployment(
    broker: DevBroker, tmp_path: Path, create_topics: bool
) -> Deployment:
    mechanism = MECHANISMS[broker.security_protocol]
    return Deployment(
        broker.bootstrap_servers,
        tmp_path,
        partitions=2,
        env=security_env(broker),
        client_options=broker.client_options(mechanism or "SCRAM-SHA-256"),
        create_topics=create_topics,
    )


def succeed(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_commands_and_worker_run_over_the_secured_listener(
    secured_broker: DevBroker, tmp_path: Path
) -> None:
    deployment = secured_deployment(secured_broker, tmp_path, create_topics=False)
    settings = deployment.settings
    try:
        created = succeed(
            deployment.run_command("topics", "create", "--partitions", "2")
        )
        for topic in settings.all_topic_names():
            assert f"{topic}: created" in created.splitlines()

        worker = deployment.start_worker()
        records = tmp_path / "records.jsonl"
        records.write_bytes(b"\n".join(corpus_lines("records-v2.jsonl")[:RECORDS]))
        replayed = succeed(
            deployment.run_command("replay", str(records), "--api-version", "2")
        )
        assert replayed.startswith(f"replayed {RECORDS} records")
        deployment.wait_committed()

        expected = expected_events("records-v2.expected.jsonl", RECORDS)
        assert expected
        assert as_multiset(deployment.published()) == as_multiset(expected)
        assert deployment.dead_letters() == []

        # The watchdog's own client reaches the broker too: the worker is ready.
        port = worker.http_port()
        deadline = time.monotonic() + 30
        while http_get(port, "/readyz")[0] != 200:
            assert time.monotonic() < deadline, http_get(port, "/readyz")
            time.sleep(0.2)
        published = by_label(
            scrape(port), "engagement_stream_events_published_total", "attribute"
        )
        assert sum(published.values()) == len(expected)

        # The start-up log shows the effective settings, the secret masked.
        worker.check_alive()
        log = worker.log_tail(chars=100_000)
        assert f"'protocol': '{secured_broker.security_protocol}'" in log
        assert SASL_PASSWORD not in log
        if secured_broker.security_protocol.startswith("SASL_"):
            assert "'sasl_password': '***'" in log
    finally:
        deployment.stop_all()


def mistaken_env(broker: DevBroker, mistake: str, tmp_path: Path) -> dict[str, str]:
    """Environment that gets one security setting wrong for this broker."""
    if mistake == "no security settings":
        return {"KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}
    if broker.security_protocol.startswith("SASL_"):
        return {"KAFKA_SASL_PASSWORD": "not-the-password"}
    return {"KAFKA_SSL_CAFILE": str(foreign_ca(tmp_path))}


def expected_cause(broker: DevBroker, mistake: str) -> str:
    """What the log must say about the mistake."""
    if mistake == "no security settings":
        # The broker hangs up on a client that skips TLS or SASL.
        return "closed"
    if broker.security_protocol.startswith("SASL_"):
        return "invalid credentials"
    return "CERTIFICATE_VERIFY_FAILED"


@pytest.mark.parametrize("mistake", ["wrong secret", "no security settings"])
def test_a_worker_that_cannot_authenticate_exits_non_zero_and_says_why(
    secured_broker: DevBroker, tmp_path: Path, mistake: str
) -> None:
    # Topics made with the right settings: only the worker's mistake can stop it.
    deployment = secured_deployment(secured_broker, tmp_path, create_topics=True)
    try:
        started = time.monotonic()
        worker = deployment.start_worker(
            ES_BROKER_TIMEOUT_SECONDS=str(BROKER_TIMEOUT_SECONDS),
            **mistaken_env(secured_broker, mistake, tmp_path),
        )
        code = worker.process.wait(timeout=BROKER_TIMEOUT_SECONDS + 60)
        took = time.monotonic() - started
        log = worker.log_tail()

        assert code != 0, log
        # Python and faust start in a few seconds; no retrying beyond the limit.
        assert took < BROKER_TIMEOUT_SECONDS + 20, log
        assert "cannot start:" in log
        assert str(secured_broker.port) in log
        assert expected_cause(secured_broker, mistake) in log, log
    finally:
        deployment.stop_all()


def foreign_ca(directory: Path) -> Path:
    """A CA certificate that did not sign the broker's certificate."""
    ca = directory / "foreign-ca.pem"
    command = "req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=not-the-broker-ca"
    files = ["-keyout", str(directory / "foreign-ca.key"), "-out", str(ca)]
    subprocess.run(
        ["openssl", *command.split(), *files], check=True, capture_output=True
    )
    return ca
