"""Inputs found by adversarial testing: each once broke the decoder or its outputs."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from stream import decoder
from stream.dead_letters import MAX_MESSAGE_BYTES, SourcePosition
from stream.dedupe_state import HEADER_SIZE
from stream.processor import BatchProcessor, InMemorySeenEvents, RawRecord
from stream.schemas import SchemaRegistry
from stream.settings import from_env
from tests.unit.test_dedupe_state import new_state

CONVERSATION = "c0ffee00-0000-4000-8000-00000000adv1"
LEAD = (
    '{"sdeType":"LEAD","lead":{"lead":{"topic":"t"},"serverTimeStamp":1718012345678}}'
)


def _outcome(raw: bytes, *, exact: bool) -> tuple[list[object], list[object]]:
    if exact:
        result = decoder._decode(raw, 2, exact=True)
    else:
        result = decoder.decode_record(raw, 2)
    return (
        [event.to_json() for event in result.events],
        [dead_letter.to_json() for dead_letter in result.dead_letters],
    )


@pytest.mark.parametrize("depth", [254, 255, 300, 400, 500])
def test_deep_but_allowed_junk_decodes_on_the_fast_path(depth: int) -> None:
    # Few enough brackets for the fast path, but deeper than orjson will
    # serialize again (its limit is 254): the record must still decode.
    junk = "[" * depth + "]" * depth
    raw = (
        f'{{"info":{{"conversationId":"{CONVERSATION}"}},"junk":{junk},'
        f'"unAuthSdes":{{"events":[{LEAD}]}}}}'
    ).encode()

    events, dead_letters = _outcome(raw, exact=False)

    assert (events, dead_letters) == _outcome(raw, exact=True)
    assert dead_letters == []
    assert len(events) == 1


def _call_at_depth(depth: int, function: Any) -> Any:
    """Call function with depth extra Python frames on the stack."""
    if depth == 0:
        return function()
    return _call_at_depth(depth - 1, function)


@pytest.mark.parametrize("stack_depth", [0, 300, 700])
def test_dead_letter_of_an_event_nested_510_deep_is_written(stack_depth: int) -> None:
    # The raw event goes into the dead letter as JSON; 510 levels is within
    # the record limit, so serializing it must not exhaust the stack.
    deep = "[" * 505 + "]" * 505
    event = (
        f'{{"sdeType":"LEAD","lead":{{"lead":{{"topic":{deep}}},'
        '"serverTimeStamp":1718012345678}}'
    )
    raw = (
        f'{{"info":{{"conversationId":"{CONVERSATION}"}},'
        f'"unAuthSdes":{{"events":[{event}]}}}}'
    ).encode()
    record = RawRecord(raw, CONVERSATION.encode(), [], SourcePosition("c", 0, 7, None))
    processor = BatchProcessor(from_env({}), SchemaRegistry.load())

    outcome = _call_at_depth(
        stack_depth, lambda: processor.process([record], InMemorySeenEvents())
    )

    (message,) = outcome.messages
    body = json.loads(message.value)
    assert (body["reason"], body["field"]) == ("type_mismatch", "lead.topic")
    nested = body["rawEvent"]["lead"]["lead"]["topic"]
    for _ in range(504):
        (nested,) = nested
    assert nested == []


@pytest.mark.parametrize(
    ("raw", "level"),
    [
        (b'{"info":{"conversationId":"c","x":"' + b"y" * 900_000, "record"),
        (
            b'{"info":{"conversationId":"c"},"unAuthSdes":{"events":'
            # a lone surrogate sends it to the ASCII writer: 2 bytes become 6
            b'[{"sdeType":"LEAD","lead":"\\ud800'
            + "\u00e9".encode() * 300_000
            + b'"}]}}',
            "event",
        ),
        (
            b'{"info":{"conversationId":"' + b"c" * 700_000 + b'"},'
            b'"unAuthSdes":{"events":[{"sdeType":"LEAD","lead":"'
            + b"y" * 200_000
            + b'"}]}}',
            "event",
        ),
        (
            b'{"info":{"conversationId":"c"},"unAuthSdes":{"events":'
            b'[{"sdeType":"' + b"X" * 990_000 + b'"}]}}',
            "event",
        ),
    ],
    ids=["broken-record", "big-event", "long-conversation-id", "long-sde-type"],
)
def test_a_dead_letter_fits_in_one_kafka_message(raw: bytes, level: str) -> None:
    record = RawRecord(raw, b"k", [], SourcePosition("c", 1, 7, None))
    processor = BatchProcessor(from_env({}), SchemaRegistry.load())

    outcome = processor.process([record], InMemorySeenEvents())

    (message,) = outcome.messages
    assert len(message.value) + len(message.key or b"") <= 1_000_000
    body = json.loads(message.value)
    assert body["level"] == level
    assert body["source"] == {
        "topic": "c",
        "partition": 1,
        "offset": 7,
        "timestamp": None,
    }
    assert body["rawOmitted"]


def test_an_event_too_large_for_one_kafka_message_is_a_dead_letter() -> None:
    # A 600 kB conversation id is both the key and part of the value of the
    # typed message: together more than Kafka takes, which stopped the worker.
    conversation = "c" * 600_000
    raw = json.dumps(
        {
            "info": {"conversationId": conversation},
            "unAuthSdes": {"events": [json.loads(LEAD), json.loads(LEAD)]},
        }
    ).encode()
    record = RawRecord(raw, conversation.encode(), [], SourcePosition("c", 0, 3, None))
    processor = BatchProcessor(from_env({}), SchemaRegistry.load())

    outcome = processor.process([record], InMemorySeenEvents())

    assert sum(outcome.published.values()) == 0
    assert outcome.dead_letters == {("event", "value_too_long"): 2}
    assert outcome.remember == {}
    for message in outcome.messages:
        assert message.topic == processor.dead_letter_topic
        assert len(message.value) + len(message.key or b"") <= 1_000_000
        body = json.loads(message.value)
        assert (body["sdeType"], body["field"]) == ("LEAD", "conversationId")
        assert body["source"]["offset"] == 3


def test_a_miskeyed_record_too_large_to_forward_is_processed_in_place() -> None:
    # Forwarding sends the raw record again, keyed by its conversation id:
    # 150 kB of id plus 900 kB of record is more than Kafka takes.
    conversation = "c" * 150_000
    event = json.loads(LEAD)
    event["lead"]["lead"]["topic"] = "t" * 40_000
    events = [event | {"serverTimeStamp": 1718012345678 + n} for n in range(18)]
    raw = json.dumps(
        {"info": {"conversationId": conversation}, "unAuthSdes": {"events": events}}
    ).encode()
    assert len(raw) > 850_000
    record = RawRecord(raw, b"other", [], SourcePosition("c", 0, 3, None))
    processor = BatchProcessor(
        from_env({}), SchemaRegistry.load(), repartition_topic="by-conversation"
    )

    outcome = processor.process([record], InMemorySeenEvents())

    assert outcome.forwarded == 0
    assert sum(outcome.published.values()) == 18
    for message in outcome.messages:
        assert len(message.value) + len(message.key or b"") <= 1_000_000


def test_a_dedupe_state_entry_fits_in_one_changelog_message() -> None:
    # 16 bytes per published event: 70,000 events of one conversation made a
    # 1.1 MB changelog message, which Kafka refused, stopping the worker.
    state, _, changelog = new_state()
    digests = {n.to_bytes(16, "big") for n in range(70_000)}
    conversation = b"c" * 1000

    state.remember(conversation, set(digests), partition=3)
    asyncio.run(state.written())

    ((partition, key, blob),) = changelog.sent
    assert blob is not None
    assert (partition, key) == (3, conversation)
    assert len(key) + len(blob) <= 1_000_000
    kept = state.seen(conversation)
    assert len(kept) == (MAX_MESSAGE_BYTES - 1000 - HEADER_SIZE) // 16
    assert kept < digests
