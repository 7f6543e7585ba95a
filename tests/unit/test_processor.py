import json
from collections import Counter
from pathlib import Path

from stream.avro_codec import decode_single_object
from stream.dead_letters import SourcePosition
from stream.processor import (
    BatchProcessor,
    InMemorySeenEvents,
    RawRecord,
    remember_all,
)
from stream.schemas import SchemaRegistry
from stream.settings import from_env

CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus"


def records(name: str, version: int, keyed: bool = True) -> list[RawRecord]:
    lines = [line for line in (CORPUS / name).read_bytes().split(b"\n") if line.strip()]
    out = []
    for offset, line in enumerate(lines):
        key = json.loads(line)["info"]["conversationId"].encode() if keyed else None
        out.append(
            RawRecord(
                line,
                key,
                [("apiVersion", str(version).encode())],
                SourcePosition("conversations", 0, offset, None),
            )
        )
    return out


def expected(name: str) -> Counter[str]:
    events = []
    for line in (CORPUS / name).read_text().splitlines():
        events += json.loads(line)["emit"]
    return Counter(json.dumps(e, sort_keys=True) for e in events)


def test_corpus_batch_publishes_each_distinct_event_once_with_its_key_and_time() -> (
    None
):
    registry = SchemaRegistry.load()
    processor = BatchProcessor(from_env({}), registry)
    state = InMemorySeenEvents()

    outcome = processor.process(records("records-v2.jsonl", 2), state)

    published = Counter()
    for message in outcome.messages:
        event = decode_single_object(message.value, registry)
        assert message.key == event["conversationId"].encode()
        assert message.timestamp_ms == event["serverTimeStamp"]
        assert message.topic == processor.settings.attribute_topic_name(
            event["attribute"]
        )
        published[json.dumps(event, sort_keys=True)] += 1
    assert published == expected("records-v2.expected.jsonl")
    assert sum(outcome.published.values()) == 214
    assert sum(outcome.duplicates.values()) == 231 - 214
    assert outcome.records["conversations"] == 52


def test_a_second_batch_of_the_same_records_publishes_nothing() -> None:
    processor = BatchProcessor(from_env({}), SchemaRegistry.load())
    state = InMemorySeenEvents()
    first = processor.process(records("records-v1.jsonl", 1), state)
    remember_all(first, state)

    again = processor.process(records("records-v1.jsonl", 1), state)

    assert again.messages == []
    assert sum(again.duplicates.values()) == 130


def test_mis_keyed_records_are_forwarded_to_the_repartition_topic() -> None:
    processor = BatchProcessor(
        from_env({}), SchemaRegistry.load(), repartition_topic="by-id"
    )
    batch = records("records-v2.jsonl", 2, keyed=False)[:5]

    outcome = processor.process(batch, InMemorySeenEvents())

    assert outcome.forwarded == 5
    assert [m.topic for m in outcome.messages] == ["by-id"] * 5
    assert [m.value for m in outcome.messages] == [r.value for r in batch]
    assert all(dict(m.headers)["apiVersion"] == b"2" for m in outcome.messages)
    assert [m.key for m in outcome.messages] == [
        json.loads(r.value)["info"]["conversationId"].encode() for r in batch
    ]


def test_pinned_version_one_publishes_text_leaves() -> None:
    registry = SchemaRegistry.load()
    processor = BatchProcessor(
        from_env({"ES_SCHEMA_VERSION_CART_STATUS": "1"}), registry
    )

    outcome = processor.process(records("records-v2.jsonl", 2), InMemorySeenEvents())

    carts = [m for m in outcome.messages if m.topic == "cartStatus"]
    assert carts
    assert all(dict(m.headers)["schemaVersion"] == b"1" for m in carts)
    event = decode_single_object(carts[0].value, registry)
    assert isinstance(event["payload"]["total"], str)


def test_the_state_changes_only_when_the_caller_remembers() -> None:
    processor = BatchProcessor(from_env({}), SchemaRegistry.load())
    state = InMemorySeenEvents()

    first = processor.process(records("records-v2.jsonl", 2), state)
    assert state.by_conversation == {}  # a batch that fails to produce leaves no trace

    retry = processor.process(records("records-v2.jsonl", 2), state)
    assert len(retry.messages) == len(first.messages)


def test_unknown_fields_are_counted_per_attribute() -> None:
    path = CORPUS / "edge" / "v2-extra-unexpected-fields.json"
    record = RawRecord(
        path.read_bytes(), None, [], SourcePosition("conversations", 0, 0, None)
    )
    processor = BatchProcessor(from_env({}), SchemaRegistry.load())

    outcome = processor.process([record], InMemorySeenEvents())

    assert outcome.unknown_fields == {"customerInfo": 3}
    assert outcome.published == {"customerInfo": 1}


def test_an_empty_conversation_id_is_a_dead_letter_here_not_a_forward() -> None:
    raw = b'{"info": {"conversationId": ""}, "unAuthSdes": {"events": []}}'
    record = RawRecord(raw, b"k", [], SourcePosition("conversations", 0, 0, None))
    processor = BatchProcessor(from_env({}), SchemaRegistry.load(), "by-id")

    outcome = processor.process([record], InMemorySeenEvents())

    assert outcome.forwarded == 0
    assert outcome.dead_letters == {("record", "missing_conversation_id"): 1}
    assert [m.key for m in outcome.messages] == [b"k"]
