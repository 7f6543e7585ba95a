"""A real worker's /metrics, scraped by us and by a real Prometheus, and its probes.

The worker runs the whole sample corpus and every edge case; its counters must
then equal, label by label, what the expected files say it publishes and
dead-letters. Readiness must follow the broker, liveness the process.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from stream.attributes import ATTRIBUTES
from stream.decoder import decode_record
from stream.devbroker import DevBroker
from stream.events import EVENT_LEVEL, EVENT_REASONS, RECORD_LEVEL, RECORD_REASONS
from stream.schemas import SchemaRegistry
from stream.topics import repartition_topic_name
from tests.integration.test_prometheus_scrape import (
    query,
    running_prometheus,
    wait_for,
)
from tests.integration.worker_harness import (
    CORPUS,
    Deployment,
    Samples,
    WorkerProcess,
    by_label,
    corpus_lines,
    expected_events,
    http_get,
    scrape,
)

PROMETHEUS = shutil.which("prometheus")
JOB = "engagement-stream"


@dataclass
class Expectation:
    """What the worker must have counted after one run of the inputs."""

    records: int = 0
    # attribute -> events decoded, before dedupe / distinct events published
    decoded: Counter[str] = field(default_factory=Counter)
    published: Counter[str] = field(default_factory=Counter)
    # (level, reason) -> dead letters
    dead_letters: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, raws: list[bytes], api_version: int, emit: list[dict]) -> None:
        self.records += len(raws)
        for raw in raws:
            # The decoder names the events of a record before dedupe; what
            # the expected files emit is after it.
            for event in decode_record(raw, api_version).events:
                self.decoded[event.attribute] += 1
        for event in emit:
            self.published[event["attribute"]] += 1


@dataclass
class CorpusRun:
    deployment: Deployment
    worker: WorkerProcess
    port: int
    expect: Expectation


def edge_inputs() -> Iterator[tuple[list[bytes], int, dict]]:
    cases = json.loads((CORPUS / "edge-expected.json").read_text())
    for name, case in sorted(cases.items()):
        path = CORPUS / "edge" / name
        if name.endswith(".jsonl"):
            raws = [line for line in path.read_bytes().split(b"\n") if line.strip()]
        else:
            raws = [path.read_bytes()]
        yield raws, int(case["apiVersion"]), case


def produce_everything(deployment: Deployment) -> Expectation:
    expect = Expectation()
    for version in (1, 2):
        raws = corpus_lines(f"records-v{version}.jsonl")
        deployment.produce(raws, api_version=version)
        expect.add(raws, version, expected_events(f"records-v{version}.expected.jsonl"))

    for raws, version, case in edge_inputs():
        deployment.produce(raws, api_version=version)
        expect.add(raws, version, case["emit"])
        for letter in case.get("deadLetters", []):
            expect.dead_letters[(letter["level"], letter["reason"])] += 1
    return expect


@pytest.fixture(scope="module")
def corpus_run(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CorpusRun]:
    deployment = Deployment(kafka_bootstrap, tmp_path_factory.mktemp("metrics"))
    try:
        worker = deployment.start_worker()
        port = worker.http_port()
        expect = produce_everything(deployment)
        deployment.wait_committed()
        yield CorpusRun(deployment, worker, port, expect)
    finally:
        deployment.stop_all()


def settled_scrape(run: CorpusRun) -> Samples:
    """Scrape once the worker has counted every record it consumed.

    A batch is counted right after its records are acknowledged, so a commit
    seen by the harness can come a moment before the count.
    """
    input_topic = run.deployment.settings.input_topic_name
    deadline = time.monotonic() + 30
    while True:
        samples = scrape(run.port)
        consumed = by_label(
            samples, "engagement_stream_records_consumed_total", "topic"
        )
        if consumed.get((input_topic,)) == run.expect.records:
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(
                f"expected {run.expect.records} records consumed, scraped "
                f"{consumed}\n{run.worker.log_tail()}"
            )
        time.sleep(0.2)


def published_versions() -> dict[str, str]:
    registry = SchemaRegistry.load()
    return {
        attribute: str(registry.published(attribute, {}).version)
        for attribute in ATTRIBUTES
    }


def test_counters_equal_the_expected_outcomes_label_by_label(
    corpus_run: CorpusRun,
) -> None:
    samples = settled_scrape(corpus_run)
    expect = corpus_run.expect
    settings = corpus_run.deployment.settings

    # Every record arrived keyed by its conversation: none took the detour.
    consumed = by_label(samples, "engagement_stream_records_consumed_total", "topic")
    assert consumed == {
        (settings.input_topic_name,): expect.records,
        (repartition_topic_name(settings),): 0,
    }

    published = by_label(
        samples,
        "engagement_stream_events_published_total",
        "attribute",
        "schema_version",
    )
    versions = published_versions()
    assert published == {
        (attribute, versions[attribute]): expect.published[attribute]
        for attribute in ATTRIBUTES
    }

    letters = by_label(
        samples, "engagement_stream_dead_letters_total", "level", "reason"
    )
    known = {(RECORD_LEVEL, reason) for reason in RECORD_REASONS}
    known |= {(EVENT_LEVEL, reason) for reason in EVENT_REASONS}
    assert set(letters) == known
    assert {key: n for key, n in letters.items() if n} == dict(expect.dead_letters)

    # Only the extra-fields edge case carries fields no schema knows: two in
    # its customerInfo object and one beside it on the event.
    unknown = by_label(
        samples, "engagement_stream_unknown_fields_dropped_total", "attribute"
    )
    assert {key: n for key, n in unknown.items() if n} == {("customerInfo",): 3}

    duplicates = by_label(
        samples, "engagement_stream_duplicates_suppressed_total", "attribute"
    )
    want_duplicates = expect.decoded - expect.published
    assert expect.published - expect.decoded == Counter()
    assert sum(want_duplicates.values()) > 0, "the corpus repeats events"
    assert duplicates == {
        (attribute,): want_duplicates[attribute] for attribute in ATTRIBUTES
    }

    decode_count = samples[("engagement_stream_decode_duration_seconds_count", ())]
    assert decode_count == expect.records
    lag = by_label(samples, "engagement_stream_event_lag_seconds_count")
    assert lag == {(): sum(expect.published.values())}


@pytest.fixture(scope="module")
def prometheus_url(
    corpus_run: CorpusRun, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    assert PROMETHEUS, "prometheus is missing: run dev/install-prometheus.sh"
    prometheus_dir = tmp_path_factory.mktemp("prometheus")
    with running_prometheus(prometheus_dir, corpus_run.port) as url:
        yield url


def test_prometheus_scrapes_the_worker_and_sees_the_same_counts(
    corpus_run: CorpusRun, prometheus_url: str
) -> None:
    expect = corpus_run.expect
    settled_scrape(corpus_run)
    topic = corpus_run.deployment.settings.input_topic_name
    consumed = f'engagement_stream_records_consumed_total{{topic="{topic}"}}'
    # Counts of one batch change together, so a scrape holding every record
    # consumed holds every other count of the run too.
    wait_for(
        lambda: instant(prometheus_url, consumed) == expect.records,
        "a scrape after the last batch",
    )

    [up] = query(prometheus_url, f'up{{job="{JOB}"}}')
    assert up["value"][1] == "1"
    assert up["metric"]["instance"] == f"127.0.0.1:{corpus_run.port}"

    published = "sum by (attribute) (engagement_stream_events_published_total)"
    series = query(prometheus_url, published)
    got = {s["metric"]["attribute"]: float(s["value"][1]) for s in series}
    assert got == {attribute: expect.published[attribute] for attribute in ATTRIBUTES}

    letters = "sum by (level, reason) (engagement_stream_dead_letters_total) > 0"
    series = query(prometheus_url, letters)
    got_letters = {
        (s["metric"]["level"], s["metric"]["reason"]): float(s["value"][1])
        for s in series
    }
    assert got_letters == dict(expect.dead_letters)


def instant(url: str, promql: str) -> float | None:
    """The value of a query that selects at most one series."""
    result = query(url, promql)
    assert len(result) <= 1, result
    return float(result[0]["value"][1]) if result else None


def test_probes_answer_ok_while_the_worker_is_healthy(corpus_run: CorpusRun) -> None:
    status, body = http_get(corpus_run.port, "/healthz")
    assert (status, body) == (200, "ok\n")

    # Connected, assigned and committing: the watchdog says so within seconds.
    wait_for(lambda: http_get(corpus_run.port, "/readyz")[0] == 200, "ready")
    status, body = http_get(corpus_run.port, "/readyz")
    assert status == 200
    assert body.startswith("ready: ")


def test_readiness_follows_the_broker_and_liveness_the_process(
    own_broker: DevBroker, tmp_path: Path
) -> None:
    deployment = Deployment(own_broker.bootstrap_servers, tmp_path)
    try:
        worker = deployment.start_worker(ES_BROKER_TIMEOUT_SECONDS="12")
        port = worker.http_port()
        deployment.produce(corpus_lines("records-v2.jsonl")[:3], api_version=2)
        deployment.wait_committed()
        wait_for(lambda: http_get(port, "/readyz")[0] == 200, "ready")

        own_broker.stop()
        stopped = time.monotonic()
        # The watchdog asks every 5 s and waits up to 10 s for an answer.
        while http_get(port, "/readyz")[0] != 503:
            assert time.monotonic() - stopped < 30, "still ready without a broker"
            assert_alive_and_live(worker, port)
            time.sleep(0.2)
        status, body = http_get(port, "/readyz")
        assert (status, body) == (503, "not ready: not connected to the broker\n")

        # Not ready but live, until the watchdog gives up and the worker exits.
        while worker.process.poll() is None:
            assert time.monotonic() - stopped < 90, "the worker never gave up"
            assert_alive_and_live(worker, port)
            time.sleep(0.5)
        assert worker.process.returncode != 0
        assert "has not answered" in worker.log_tail()
        with pytest.raises(urllib.error.URLError):
            http_get(port, "/healthz", timeout=2)
    finally:
        deployment.stop_all()


def assert_alive_and_live(worker: WorkerProcess, port: int) -> None:
    """/healthz answers 200 for as long as the worker process runs."""
    try:
        status, _ = http_get(port, "/healthz", timeout=3)
    except (urllib.error.URLError, ConnectionError):
        # The server closes while the process exits; only that excuses it.
        worker.process.wait(timeout=10)
        return
    assert status == 200


def test_readiness_turns_off_as_soon_as_the_worker_stops(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    deployment = Deployment(kafka_bootstrap, tmp_path)
    try:
        worker = deployment.start_worker()
        port = worker.http_port()
        deployment.produce(corpus_lines("records-v2.jsonl")[:2], api_version=2)
        deployment.wait_committed()
        wait_for(lambda: http_get(port, "/readyz")[0] == 200, "ready")

        # Stopping leaves the group and commits: a window in which the worker
        # still answers but must not be counted on any more.
        worker.process.terminate()
        answers = []
        while worker.process.poll() is None:
            try:
                answers.append(http_get(port, "/readyz", timeout=2))
            except (urllib.error.URLError, ConnectionError):
                break
            time.sleep(0.01)
        assert worker.process.wait(timeout=30) == 0

        # A probe or two may come before the signal is handled; none after.
        stopping = (503, "not ready: stopping\n")
        assert stopping in answers, answers[-3:]
        assert set(answers[answers.index(stopping) :]) == {stopping}
    finally:
        deployment.stop_all()
