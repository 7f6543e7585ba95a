"""The dev broker is a real Kafka: topics, keyed records, groups, restarts, the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import UnknownTopicOrPartitionError

from stream.devbroker import DevBroker, running_broker_pids

REPO = Path(__file__).resolve().parents[2]


@contextlib.asynccontextmanager
async def admin_client(**options) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    async with admin_client(bootstrap_servers=bootstrap) as admin:
        await admin.create_topics([NewTopic(topic, partitions, 1)])


async def produce(bootstrap: str, topic: str, records: list[tuple[str, str]]) -> dict:
    """Send keyed records; return the partitions each key landed on."""
    partitions_by_key: dict[str, set[int]] = defaultdict(set)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            sent = await producer.send_and_wait(topic, value.encode(), key=key.encode())
            partitions_by_key[key].add(sent.partition)
    finally:
        await producer.stop()
    return partitions_by_key


async def consume(bootstrap: str, topic: str, group: str, count: int) -> list:
    """Read ``count`` records as member of ``group``, committing what was read."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list = []
    try:
        deadline = time.monotonic() + 30
        while len(records) < count and time.monotonic() < deadline:
            wanted = count - len(records)
            batches = await consumer.getmany(timeout_ms=500, max_records=wanted)
            for batch in batches.values():
                records.extend(batch)
        await consumer.commit()
    finally:
        await consumer.stop()
    return records


async def committed_offsets(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    async with admin_client(bootstrap_servers=bootstrap) as admin:
        offsets = await admin.list_consumer_group_offsets(group)
    return {partition: meta.offset for partition, meta in offsets.items()}


async def topic_names(bootstrap: str, **options) -> list[str]:
    async with admin_client(bootstrap_servers=bootstrap, **options) as admin:
        return await admin.list_topics()


def test_keyed_records_round_trip_and_group_offsets_read_back(
    kafka_bootstrap, topic_name
):
    topic = topic_name("conversations")
    group = topic_name("group")
    records = [(f"conversation-{i % 8}", json.dumps({"n": i})) for i in range(48)]
    asyncio.run(create_topic(kafka_bootstrap, topic, partitions=4))

    partitions_by_key = asyncio.run(produce(kafka_bootstrap, topic, records))
    consumed = asyncio.run(consume(kafka_bootstrap, topic, group, len(records)))

    # One key, one partition: the order of a conversation's records is kept.
    assert all(len(partitions) == 1 for partitions in partitions_by_key.values())
    assert len(set().union(*partitions_by_key.values())) > 1
    for record in consumed:
        assert {record.partition} == partitions_by_key[record.key.decode()]

    assert sorted((r.key.decode(), r.value.decode()) for r in consumed) == sorted(
        records
    )

    counts: dict[int, int] = defaultdict(int)
    for record in consumed:
        counts[record.partition] += 1
    expected = {TopicPartition(topic, p): n for p, n in counts.items()}
    assert asyncio.run(committed_offsets(kafka_bootstrap, group)) == expected


def test_topics_are_not_created_on_first_use(kafka_bootstrap, topic_name):
    topic = topic_name("missing")

    async def send() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap, request_timeout_ms=2000
        )
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"value")
        finally:
            await producer.stop()

    with pytest.raises(UnknownTopicOrPartitionError):
        asyncio.run(send())
    assert topic not in asyncio.run(topic_names(kafka_bootstrap))


def test_restart_keeps_topics_records_and_offsets(own_broker, topic_name):
    topic = topic_name("conversations")
    group = topic_name("group")
    bootstrap = own_broker.bootstrap_servers
    records = [("conversation-1", f"event-{i}") for i in range(10)]
    asyncio.run(create_topic(bootstrap, topic, partitions=1))
    asyncio.run(produce(bootstrap, topic, records))
    first_half = asyncio.run(consume(bootstrap, topic, group, 5))

    own_broker.restart()

    assert own_broker.bootstrap_servers == bootstrap
    assert topic in asyncio.run(topic_names(bootstrap))
    assert asyncio.run(committed_offsets(bootstrap, group)) == {
        TopicPartition(topic, 0): 5
    }
    rest = asyncio.run(consume(bootstrap, topic, group, 5))
    assert [r.value.decode() for r in rest] == [v for _, v in records[5:]]
    assert [r.value.decode() for r in first_half] == [v for _, v in records[:5]]


def test_stop_leaves_no_broker_jvm_and_no_data_dir():
    with DevBroker() as broker:
        pid, data_dir = broker.pid, broker.data_dir
        assert running_broker_pids(data_dir) == [pid]

    assert running_broker_pids(data_dir) == []
    assert not Path(f"/proc/{pid}").exists()
    assert not data_dir.exists()


def test_cli_start_status_stop(tmp_path):
    state_file = tmp_path / "dev-broker.json"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "stream.cli", "dev-broker"]
        command += ["--state-file", str(state_file), *args]
        return subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, timeout=120
        )

    started = cli("start")
    try:
        assert started.returncode == 0, started.stderr
        last_line = started.stdout.strip().splitlines()[-1]
        match = re.fullmatch(r"KAFKA_BOOTSTRAP_SERVERS=127\.0\.0\.1:(\d+)", last_line)
        assert match, started.stdout
        state = json.loads(state_file.read_text())
        assert state["port"] == int(match[1])
        assert running_broker_pids(Path(state["data_dir"])) == [state["pid"]]

        status = cli("status")
        assert status.returncode == 0
        assert last_line in status.stdout
        assert f"127.0.0.1:{match[1]}" in asyncio.run(_broker_address(last_line))
    finally:
        stopped = cli("stop")

    assert stopped.returncode == 0, stopped.stderr
    assert running_broker_pids(Path(state["data_dir"])) == []
    assert not os.path.exists(state["data_dir"])
    assert cli("status").returncode == 1


async def _broker_address(env_line: str) -> str:
    bootstrap = env_line.split("=", 1)[1]
    async with admin_client(bootstrap_servers=bootstrap) as admin:
        cluster = await admin.describe_cluster()
    broker = cluster["brokers"][0]
    return f"{broker['host']}:{broker['port']}"


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SSL", "SASL_SSL"])
def test_secured_listener_round_trips_with_every_mechanism(protocol, topic_name):
    topic = topic_name("secured")
    mechanisms = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
    if not protocol.startswith("SASL_"):
        mechanisms = ["none"]

    async def round_trip(options: dict) -> bytes:
        async with admin_client(**options) as admin:
            await admin.create_topics([NewTopic(topic, 1, 1)])

        producer = AIOKafkaProducer(**options)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"secret-free payload")
        finally:
            await producer.stop()

        consumer = AIOKafkaConsumer(topic, auto_offset_reset="earliest", **options)
        await consumer.start()
        try:
            return (await consumer.getone()).value
        finally:
            await consumer.stop()

    with DevBroker(security_protocol=protocol) as broker:
        for mechanism in mechanisms:
            options = broker.client_options(mechanism)
            topic = topic_name(f"secured-{mechanism}")
            assert asyncio.run(round_trip(options)) == b"secret-free payload"

        # The listener really demands what it advertises: plain clients get nowhere.
        with pytest.raises(Exception):  # noqa: B017 - TLS or SASL failures differ
            asyncio.run(topic_names(broker.bootstrap_servers, request_timeout_ms=3000))
