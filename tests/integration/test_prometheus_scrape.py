"""A real Prometheus scrapes the health server and reads back the known counts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from stream.events import DeadLetter
from stream.health import HealthServer, Readiness
from stream.metrics import Metrics

PROMETHEUS = shutil.which("prometheus")
JOB = "engagement-stream"

pytestmark = [
    pytest.mark.integration,
    # CI installs Prometheus (dev/install-prometheus.sh): there a missing
    # binary is a failure, not a reason to skip.
    pytest.mark.skipif(
        PROMETHEUS is None and not os.environ.get("CI"),
        reason="prometheus not installed: run dev/install-prometheus.sh",
    ),
]


class ServerThread:
    """A HealthServer on its own event loop in a thread, as the worker runs it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        readiness = Readiness(120.0)
        self.server = HealthServer(registry, readiness, host="127.0.0.1", port=0)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> int:
        self.thread.start()
        return self._call(self.server.start())

    def stop(self) -> None:
        self._call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)


# One Prometheus for the module: starting one takes a few seconds.
@pytest.fixture(scope="module")
def metrics() -> Metrics:
    metrics = Metrics(CollectorRegistry(), input_topics=("conversations",))
    metrics.count_consumed("conversations", 10, 4096)
    metrics.count_published("lead", 1, 7)
    metrics.count_published("cartStatus", 2, 3)
    metrics.count_dead_letters(
        [DeadLetter("record", "invalid_json", "expected JSON")] * 2
    )
    metrics.on_assigned([("conversations", 0), ("conversations", 1)])
    metrics.set_consumer_lag({("conversations", 0): 42, ("conversations", 1): 0})
    metrics.observe_decode_seconds(0.0003)
    return metrics


@pytest.fixture(scope="module")
def health_port(metrics: Metrics) -> Iterator[int]:
    server = ServerThread(metrics.registry)
    port = server.start()
    try:
        yield port
    finally:
        server.stop()


@pytest.fixture(scope="module")
def prometheus_url(
    tmp_path_factory: pytest.TempPathFactory, health_port: int
) -> Iterator[str]:
    assert PROMETHEUS, "prometheus is missing on CI: dev/install-prometheus.sh failed?"
    with running_prometheus(tmp_path_factory.mktemp("prometheus"), health_port) as url:
        yield url


@contextlib.contextmanager
def running_prometheus(tmp_path: Path, target_port: int) -> Iterator[str]:
    """A real Prometheus on a free loopback port scraping 127.0.0.1:target_port."""
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(scrape_config(target_port))
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: ready(url, process), "Prometheus ready", tmp_path)
        yield url
    finally:
        stop(process)
        log.close()


def free_port() -> int:
    # Another process may take it before Prometheus binds; unlikely on loopback.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape_config(target_port: int) -> str:
    return (
        "global:\n"
        "  scrape_interval: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        f"  - job_name: {JOB}\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{target_port}']\n"
    )


def ready(url: str, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"prometheus exited with {process.returncode}")
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError):
        return False


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def wait_for(
    condition: Callable[[], bool], what: str, logs: Path | None = None
) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    log = (logs / "prometheus.log").read_text() if logs else ""
    raise AssertionError(f"timed out waiting for {what}\n{log}")


def query(url: str, promql: str) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(f"{url}/api/v1/query?{params}", timeout=5) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def scalar(url: str, promql: str) -> float | None:
    result = query(url, promql)
    if not result:
        return None
    [series] = result
    return float(series["value"][1])


def test_prometheus_scrapes_the_known_counts(prometheus_url, metrics):
    lead = 'engagement_stream_events_published_total{attribute="lead"}'
    wait_for(lambda: scalar(prometheus_url, lead) is not None, "a first scrape")

    assert scalar(prometheus_url, f'up{{job="{JOB}"}}') == 1
    assert scalar(prometheus_url, lead) == 7
    cart = 'engagement_stream_events_published_total{schema_version="2"}'
    assert scalar(prometheus_url, cart) == 3
    invalid_json = 'engagement_stream_dead_letters_total{reason="invalid_json"}'
    assert scalar(prometheus_url, invalid_json) == 2
    assert scalar(prometheus_url, "engagement_stream_records_consumed_total") == 10
    assert scalar(prometheus_url, "engagement_stream_consumed_bytes_total") == 4096
    assert (
        scalar(prometheus_url, "engagement_stream_decode_duration_seconds_count") == 1
    )
    lag = "sum(engagement_stream_consumer_lag_messages)"
    assert scalar(prometheus_url, lag) == 42


def test_zero_series_and_build_info_reach_prometheus(prometheus_url):
    purchase = 'engagement_stream_events_published_total{attribute="purchase"}'
    wait_for(lambda: scalar(prometheus_url, purchase) is not None, "a first scrape")

    assert scalar(prometheus_url, purchase) == 0
    reasons = query(prometheus_url, "engagement_stream_dead_letters_total == 0")
    assert len(reasons) == 16
    [build] = query(prometheus_url, "engagement_stream_build_info")
    assert build["metric"]["faust"] == "0.15.3"
    assert build["metric"]["aiokafka"] == "0.14.0"
    assert build["metric"]["job"] == JOB


def test_later_counts_show_in_the_next_scrape(prometheus_url, metrics):
    # An attribute no other test looks at, so the order of the tests is free.
    service = 'engagement_stream_events_published_total{attribute="serviceActivity"}'
    wait_for(lambda: scalar(prometheus_url, service) == 0, "a first scrape")

    metrics.count_published("serviceActivity", 1, 5)
    metrics.set_dedupe_keys(900)

    wait_for(lambda: scalar(prometheus_url, service) == 5, "the new count")
    assert scalar(prometheus_url, "engagement_stream_dedupe_keys") == 900
