"""Run real workers against a real broker and read back what they published.

Each test gets its own topic prefix and consumer group, so tests sharing the
session broker never see each other's records.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from prometheus_client.parser import text_string_to_metric_families

from stream.avro_codec import decode_single_object
from stream.consume import read_topic
from stream.schemas import SchemaRegistry
from stream.settings import Settings, from_env
from stream.topics import TopicPlan, ensure_topics

CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus"
# The worker's start-up line that names the health server's bound port.
_METRICS_LINE = re.compile(rb"metrics on http://[^:/]+:(\d+)/metrics")

# Series as scraped: (sample name, sorted label pairs) -> value.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Deployment:
    """One isolated set of topics and a consumer group on a broker.

    Args:
        bootstrap: the broker's bootstrap servers.
        tmp_path: where worker logs and state go.
        partitions: partitions of every topic.
        env: more environment for the service (e.g. KAFKA_SECURITY_PROTOCOL).
        client_options: keyword arguments for the harness' own aiokafka
            clients (a secured broker's ``client_options()``); plain text to
            ``bootstrap`` when None.
        create_topics: create the topics now; False leaves that to the test
            (``engagement-stream topics create``).
    """

    def __init__(
        self,
        bootstrap: str,
        tmp_path: Path,
        partitions: int = 4,
        *,
        env: Mapping[str, str] | None = None,
        client_options: Mapping[str, Any] | None = None,
        create_topics: bool = True,
    ) -> None:
        tag = uuid.uuid4().hex[:8]
        self.env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "ES_TOPIC_PREFIX": f"t{tag}.",
            "ES_APP_ID": f"es-test-{tag}",
            "ES_DATA_DIR": str(tmp_path / "state"),
            "ES_BROKER_TIMEOUT_SECONDS": "60",
            "ES_LOG_LEVEL": "INFO",
            **(env or {}),
        }
        self.settings: Settings = from_env(self.env)
        self.client_options = dict(client_options or {"bootstrap_servers": bootstrap})
        self.tmp_path = tmp_path
        self.partitions = partitions
        self.workers: list[WorkerProcess] = []
        if create_topics:
            plan = TopicPlan(partitions=partitions)
            asyncio.run(ensure_topics(self.settings, plan))

    def start_worker(self, name: str = "w", **extra_env: str) -> WorkerProcess:
        """Start a worker process; it is stopped by ``stop_all``."""
        env = {**self.env, "ES_HTTP_PORT": "0", **extra_env}
        worker = WorkerProcess(env, self.tmp_path / f"{name}-{len(self.workers)}.log")
        self.workers.append(worker)
        return worker

    def stop_all(self) -> None:
        """Stop every worker started here (SIGTERM, then SIGKILL)."""
        for worker in self.workers:
            worker.stop()

    def run_command(
        self, *args: str, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``engagement-stream ARGS...`` with this deployment's environment."""
        return subprocess.run(
            [sys.executable, "-m", "stream.cli", *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def produce(
        self,
        records: Iterable[bytes],
        api_version: int | None,
        keyed: bool = True,
    ) -> int:
        """Produce raw records to the input topic; return how many."""
        return asyncio.run(self._produce(list(records), api_version, keyed))

    async def _produce(
        self, records: list[bytes], api_version: int | None, keyed: bool
    ) -> int:
        producer = AIOKafkaProducer(**self.client_options, linger_ms=5)
        await producer.start()
        headers = (
            [] if api_version is None else [("apiVersion", str(api_version).encode())]
        )
        try:
            futures = []
            for raw in records:
                key = _conversation_key(raw) if keyed else None
                futures.append(
                    await producer.send(
                        self.settings.input_topic_name, raw, key=key, headers=headers
                    )
                )
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        return len(records)

    def wait_committed(self, timeout: float = 120.0) -> None:
        """Block until the group committed the end of the input topics."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for worker in self.workers:
                worker.check_alive()
            try:
                if asyncio.run(self._caught_up()):
                    return
            except KafkaError:
                pass  # a fresh broker loads its group coordinator for a while

            time.sleep(0.5)
        raise AssertionError(
            f"workers did not commit all input within {timeout:.0f} s; logs:\n"
            + "\n".join(w.log_tail() for w in self.workers)
        )

    async def _caught_up(self) -> bool:
        inputs = [
            self.settings.input_topic_name,
            self.settings.input_topic_name + "-by-conversation",
        ]
        tps = [TopicPartition(t, p) for t in inputs for p in range(self.partitions)]
        admin = AIOKafkaAdminClient(**self.client_options)
        consumer = AIOKafkaConsumer(**self.client_options, group_id=None)
        await admin.start()
        await consumer.start()
        try:
            committed = await admin.list_consumer_group_offsets(self.settings.app_id)
            ends = await consumer.end_offsets(tps)
        finally:
            await admin.close()
            await consumer.stop()
        return all(
            ends[tp] == 0 or (tp in committed and committed[tp].offset >= ends[tp])
            for tp in tps
        )

    def published(self, attribute_topics_only: bool = True) -> list[dict[str, Any]]:
        """Every canonical event on the typed topics, decoded from its Avro."""
        return asyncio.run(self._published())

    async def _published(self) -> list[dict[str, Any]]:
        registry = SchemaRegistry.load()
        events = []
        for attribute in registry.attributes():
            topic = self.settings.attribute_topic_name(attribute)
            async for message in read_topic(self.settings, topic, idle_seconds=0.3):
                event = decode_single_object(message.value, registry)
                # The Kafka timestamp is the event's serverTimeStamp and the
                # key its conversation id: check both on every message.
                assert message.timestamp == event["serverTimeStamp"], message
                assert message.key == event["conversationId"].encode(), message
                events.append(event)
        return events

    def dead_letters(self) -> list[dict[str, Any]]:
        """Every dead letter message, with its headers merged in."""
        return asyncio.run(self._dead_letters())

    async def _dead_letters(self) -> list[dict[str, Any]]:
        letters = []
        topic = self.settings.dead_letter_topic_name
        async for message in read_topic(self.settings, topic, idle_seconds=0.3):
            body = json.loads(message.value)
            body["_headers"] = {k: v.decode() for k, v in message.headers}
            letters.append(body)
        return letters


class WorkerProcess:
    """``engagement-stream worker`` in a child process."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self.killed = False
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "worker"],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def check_alive(self) -> None:
        """Fail loudly with the log if the worker died (unless it was killed)."""
        if self.killed:
            return
        code = self.process.poll()
        if code is not None:
            raise AssertionError(f"worker exited with {code}:\n{self.log_tail()}")

    def http_port(self, timeout: float = 60.0) -> int:
        """The health server's port, read from the worker's start-up log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            found = _METRICS_LINE.search(self.log_path.read_bytes())
            if found:
                return int(found.group(1))
            time.sleep(0.2)
        raise AssertionError(
            f"worker logged no metrics port in {timeout:.0f} s:\n{self.log_tail()}"
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit."""
        self.killed = True
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self._log.close()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; SIGKILL if it does not stop in time."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def log_tail(self, chars: int = 6000) -> str:
        """The end of the worker's log."""
        if not self._log.closed:
            self._log.flush()
        return (
            f"--- {self.log_path.name} ---\n"
            + self.log_path.read_text(errors="replace")[-chars:]
        )


def _conversation_key(raw: bytes) -> bytes | None:
    try:
        return json.loads(raw)["info"]["conversationId"].encode()
    except Exception:
        return None


def corpus_lines(name: str) -> list[bytes]:
    """The raw records of a corpus JSON Lines file."""
    return [line for line in (CORPUS / name).read_bytes().split(b"\n") if line.strip()]


def expected_events(name: str, lines: int | None = None) -> list[dict[str, Any]]:
    """Every expected canonical event of a corpus expected file (or its first lines)."""
    events = []
    for line in (CORPUS / name).read_text().splitlines()[:lines]:
        events.extend(json.loads(line)["emit"])
    return events


def as_multiset(events: Iterable[dict[str, Any]]) -> Counter[str]:
    """Events as a multiset of their canonical JSON."""
    return Counter(json.dumps(e, sort_keys=True, ensure_ascii=False) for e in events)


def with_new_conversation_ids(
    records: list[bytes], events: list[dict[str, Any]], copy: int
) -> tuple[list[bytes], list[dict[str, Any]]]:
    """A copy of records and their expected events under fresh conversation ids."""
    mapping: dict[str, str] = {}
    for raw in records:
        old = json.loads(raw)["info"]["conversationId"]
        mapping.setdefault(old, str(uuid.uuid5(uuid.NAMESPACE_URL, f"{old}/{copy}")))
    new_records = []
    for raw in records:
        old = json.loads(raw)["info"]["conversationId"]
        new_records.append(raw.replace(old.encode(), mapping[old].encode()))
    new_events = [{**e, "conversationId": mapping[e["conversationId"]]} for e in events]
    return new_records, new_events


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, str]:
    """GET a path of a worker's health server on loopback: (status, body)."""
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def scrape(port: int) -> Samples:
    """A worker's /metrics (plain text exposition), sample by sample."""
    status, text = http_get(port, "/metrics")
    assert status == 200, text
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples[(sample.name, labels)] = sample.value
    return samples


def by_label(samples: Samples, name: str, *labels: str) -> dict[tuple[str, ...], float]:
    """One metric's series keyed by the values of ``labels``, in that order."""
    series = {}
    for (sample, pairs), value in samples.items():
        if sample == name:
            named = dict(pairs)
            series[tuple(named[label] for label in labels)] = value
    return series
