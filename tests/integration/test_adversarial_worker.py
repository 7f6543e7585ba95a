"""The worker against records built to break it: each must end as events or dead
letters, and the worker must keep running and committing."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.worker_harness import Deployment

STAMP = 1718012345678


@pytest.fixture
def deployment(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Deployment]:
    deployment = Deployment(kafka_bootstrap, tmp_path, partitions=2)
    try:
        yield deployment
    finally:
        deployment.stop_all()


def lead_record(conversation_id: str, topic: str = "t") -> bytes:
    event = {"sdeType": "LEAD", "lead": {"lead": {"topic": topic}}}
    event["serverTimeStamp"] = STAMP  # type: ignore[assignment]
    record = {
        "info": {"conversationId": conversation_id},
        "unAuthSdes": {"events": [event]},
    }
    return json.dumps(record).encode()


Message = tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]


def produce_raw(deployment: Deployment, messages: list[Message]) -> None:
    async def run() -> None:
        producer = AIOKafkaProducer(
            **deployment.client_options, max_request_size=4 * 1024 * 1024
        )
        await producer.start()
        try:
            for key, value, headers in messages:
                await producer.send_and_wait(
                    deployment.settings.input_topic_name,
                    value,
                    key=key,
                    headers=headers,
                )
        finally:
            await producer.stop()

    asyncio.run(run())


def test_garbage_values_keys_and_headers_end_as_events_or_dead_letters(
    deployment: Deployment,
) -> None:
    worker = deployment.start_worker()
    produce_raw(
        deployment,
        [
            (b"tombstone", None, []),
            (b"empty", b"", [("apiVersion", b"2")]),
            (b"\xff\xfe not utf-8", lead_record("adv-a"), [("apiVersion", b"3")]),
            (
                b"adv-b",
                lead_record("adv-b"),
                [("apiVersion", b"two"), ("apiVersion", b"2"), ("apiVersion", b"1")],
            ),
            (b"adv-c", lead_record("adv-c"), [("apiVersion", None)]),
            (None, lead_record("adv-d"), [("", b"")]),
            (b"lone", b'{"info":{"conversationId":"x\\ud800"}}', []),
            (None, b'{"info":{"conversationId":""}}', []),
            (b"k", lead_record("adv-e", "x" * 50_001), [("apiVersion", b"2")]),
        ],
    )
    deployment.wait_committed()
    worker.check_alive()

    published = deployment.published()
    assert sorted(e["conversationId"] for e in published) == [
        "adv-a",
        "adv-b",
        "adv-c",
        "adv-d",
    ]
    by_id = {e["conversationId"]: e for e in published}
    assert by_id["adv-b"]["apiVersion"] == 2  # the first valid header wins
    assert by_id["adv-a"]["apiVersion"] == 2  # "3" is ignored: inferred

    letters = Counter(
        (letter["level"], letter["reason"]) for letter in deployment.dead_letters()
    )
    assert letters == Counter(
        {
            ("record", "invalid_json"): 2,
            ("record", "invalid_encoding"): 1,
            ("record", "missing_conversation_id"): 1,
            ("event", "value_too_long"): 1,
        }
    )


def test_a_record_too_large_to_forward_as_a_dead_letter_does_not_stop_the_worker(
    deployment: Deployment,
) -> None:
    # 900 kB of broken JSON: its dead letter would carry it in base64, more
    # than a Kafka message may hold by default.
    broken = b'{"info":{"conversationId":"adv-big","x":"' + b"y" * 900_000
    worker = deployment.start_worker()
    produce_raw(
        deployment,
        [(b"adv-big", broken, []), (b"adv-after", lead_record("adv-after"), [])],
    )
    deployment.wait_committed()
    worker.check_alive()

    assert [e["conversationId"] for e in deployment.published()] == ["adv-after"]
    (letter,) = deployment.dead_letters()
    assert (letter["level"], letter["reason"]) == ("record", "invalid_json")
    assert letter["source"]["offset"] == 0
    assert letter["rawRecord"] is None
    assert letter["rawOmitted"]


def test_a_conversation_with_more_events_than_one_state_entry_holds(
    deployment: Deployment,
) -> None:
    # The dedupe state keeps 16 bytes per published event of a conversation in
    # one table entry; 70,000 events make an entry over 1 MB, more than its
    # changelog topic takes.
    def record(first: int) -> bytes:
        events = [
            {
                "sdeType": "LEAD",
                "lead": {"lead": {"topic": str(n)}},
                "serverTimeStamp": STAMP,
            }
            for n in range(first, first + 10_000)
        ]
        body = {
            "info": {"conversationId": "adv-many"},
            "unAuthSdes": {"events": events},
        }
        return json.dumps(body, separators=(",", ":")).encode()

    worker = deployment.start_worker()
    produce_raw(deployment, [(b"adv-many", record(n * 10_000), []) for n in range(7)])
    produce_raw(deployment, [(b"adv-after", lead_record("adv-after"), [])])
    deployment.wait_committed(timeout=240)
    worker.check_alive()

    published = deployment.published()
    assert len(published) == 70_001
