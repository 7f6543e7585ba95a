"""The worker against a real broker: typed topics, dead letters, dedupe, delivery."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.worker_harness import (
    CORPUS,
    Deployment,
    as_multiset,
    corpus_lines,
    expected_events,
    with_new_conversation_ids,
)


@pytest.fixture
def deployment(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Deployment]:
    deployment = Deployment(kafka_bootstrap, tmp_path)
    try:
        yield deployment
    finally:
        deployment.stop_all()


def sample_expectation() -> list[dict[str, object]]:
    return expected_events("records-v1.expected.jsonl") + expected_events(
        "records-v2.expected.jsonl"
    )


def produce_samples(deployment: Deployment) -> None:
    deployment.produce(corpus_lines("records-v1.jsonl"), api_version=1)
    deployment.produce(corpus_lines("records-v2.jsonl"), api_version=2)


def test_sample_corpus_is_published_exactly_once(deployment: Deployment) -> None:
    deployment.start_worker()
    produce_samples(deployment)
    deployment.wait_committed()

    published = deployment.published()
    assert as_multiset(published) == as_multiset(sample_expectation())
    assert deployment.dead_letters() == []

    # The same records again (a conversation re-fetched) publish nothing new.
    produce_samples(deployment)
    deployment.wait_committed()
    assert as_multiset(deployment.published()) == as_multiset(sample_expectation())


def test_typed_messages_name_their_schema_in_headers(deployment: Deployment) -> None:
    deployment.start_worker()
    deployment.produce(corpus_lines("records-v2.jsonl")[:3], api_version=2)
    deployment.wait_committed()

    import asyncio

    from stream.consume import read_topic

    async def first_lead_headers() -> dict[str, bytes]:
        topic = deployment.settings.attribute_topic_name("cartStatus")
        async for message in read_topic(deployment.settings, topic, idle_seconds=0.3):
            return dict(message.headers)
        raise AssertionError("no cartStatus message")

    headers = asyncio.run(first_lead_headers())
    assert headers["sdeType"] == b"CART_STATUS"
    assert headers["schemaVersion"] == b"2"
    assert headers["schema"].endswith(b"CartStatus")


def edge_cases() -> list[tuple[str, dict[str, object]]]:
    expected = json.loads((CORPUS / "edge-expected.json").read_text())
    return sorted(expected.items())


def test_nasty_records_become_dead_letters_while_good_ones_flow(
    deployment: Deployment,
) -> None:
    deployment.start_worker()

    want_events = []
    want_letters = []
    for name, case in edge_cases():
        path = CORPUS / "edge" / name
        raws = (
            [line for line in path.read_bytes().split(b"\n") if line.strip()]
            if name.endswith(".jsonl")
            else [path.read_bytes()]
        )
        deployment.produce(raws, api_version=int(case["apiVersion"]))
        want_events += case["emit"]
        want_letters += [
            (d["level"], d["reason"], d.get("sdeType"), d.get("field"))
            for d in case.get("deadLetters", [])
        ]
    # Good records around the nasty ones still flow.
    deployment.produce(corpus_lines("records-v2.jsonl"), api_version=2)
    want_events += expected_events("records-v2.expected.jsonl")
    deployment.wait_committed()

    assert as_multiset(deployment.published()) == as_multiset(want_events)
    letters = deployment.dead_letters()
    got = [
        (
            d["level"],
            d["reason"],
            d["sdeType"] if d["level"] == "event" else None,
            d["field"] if d["level"] == "event" else None,
        )
        for d in letters
    ]
    want = [
        (lv, r, s if lv == "event" else None, f if lv == "event" else None)
        for lv, r, s, f in want_letters
    ]
    assert sorted(got, key=repr) == sorted(want, key=repr)

    for letter in letters:
        assert letter["_headers"]["deadLetterReason"] == letter["reason"]
        assert letter["message"]
        assert letter["source"]["topic"] == deployment.settings.input_topic_name
        assert isinstance(letter["source"]["offset"], int)
        if letter["level"] == "record":
            assert letter["rawRecord"]
        else:
            assert letter["rawEvent"] is not None


def test_unkeyed_input_is_repartitioned_and_still_deduplicated(
    deployment: Deployment,
) -> None:
    deployment.start_worker()
    produce_samples_unkeyed = [
        (corpus_lines("records-v1.jsonl"), 1),
        (corpus_lines("records-v2.jsonl"), 2),
    ]
    for records, version in produce_samples_unkeyed:
        deployment.produce(records, api_version=version, keyed=False)
        deployment.produce(records, api_version=version, keyed=False)
    deployment.wait_committed()

    assert as_multiset(deployment.published()) == as_multiset(sample_expectation())


def scaled_corpus(copies: int) -> tuple[list[bytes], list[dict[str, object]]]:
    base_records = corpus_lines("records-v2.jsonl")
    base_events = expected_events("records-v2.expected.jsonl")
    records: list[bytes] = []
    events: list[dict[str, object]] = []
    for copy in range(copies):
        more_records, more_events = with_new_conversation_ids(
            base_records, base_events, copy
        )
        records += more_records
        events += more_events
    return records, events


def test_sigkill_mid_stream_loses_nothing(deployment: Deployment) -> None:
    records, events = scaled_corpus(40)
    deployment.produce(records, api_version=2)

    first = deployment.start_worker("first")
    deadline = time.monotonic() + 90
    while (
        time.monotonic() < deadline and len(deployment.published()) < len(events) // 4
    ):
        first.check_alive()
        time.sleep(0.2)
    first.kill()

    deployment.start_worker("second")
    deployment.wait_committed(timeout=180)

    published = as_multiset(deployment.published())
    wanted = as_multiset(events)
    missing = wanted - published
    assert not missing, f"{sum(missing.values())} events lost"
    # Duplicates are allowed only for records in flight at the kill.
    extra = sum((published - wanted).values())
    assert extra <= len(events) // 2


def test_second_worker_joining_mid_stream_loses_and_duplicates_nothing(
    deployment: Deployment,
) -> None:
    records, events = scaled_corpus(30)
    half = len(records) // 2
    deployment.start_worker("first")
    deployment.produce(records[:half], api_version=2)
    time.sleep(2)
    deployment.start_worker("second")
    deployment.produce(records[half:], api_version=2)
    deployment.wait_committed(timeout=180)

    assert as_multiset(deployment.published()) == as_multiset(events)


def test_broker_restart_mid_stream_loses_nothing(own_broker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    deployment = Deployment(own_broker.bootstrap_servers, tmp_path)
    try:
        records, events = scaled_corpus(20)
        deployment.start_worker()
        deployment.produce(records[: len(records) // 2], api_version=2)
        time.sleep(3)
        own_broker.restart()
        deployment.produce(records[len(records) // 2 :], api_version=2)
        deployment.wait_committed(timeout=180)

        published = as_multiset(deployment.published())
        missing = as_multiset(events) - published
        assert not missing, f"{sum(missing.values())} events lost"
    finally:
        deployment.stop_all()


def test_worker_exits_non_zero_when_the_broker_stays_unreachable(
    own_broker, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    deployment = Deployment(own_broker.bootstrap_servers, tmp_path)
    worker = deployment.start_worker(ES_BROKER_TIMEOUT_SECONDS="10")
    try:
        deployment.produce(corpus_lines("records-v2.jsonl")[:2], api_version=2)
        deployment.wait_committed()
        own_broker.stop()
        code = worker.process.wait(timeout=90)
        assert code != 0
        assert "has not answered" in worker.log_tail()
    finally:
        deployment.stop_all()
