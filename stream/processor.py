"""One batch of raw records in, the messages to produce out.

This is the worker's hot path without any Kafka client in it: decode each raw
record, drop events already published (the dedupe state), encode the rest as
framed single-object Avro for their attribute topic, and turn every dead letter
into a dead letter queue message. The faust agent and the benchmark's reference
loop both call it, so they do exactly the same work per record.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from stream.attributes import ATTRIBUTES
from stream.avro_codec import encode_single_object
from stream.dead_letters import MAX_MESSAGE_BYTES, SourcePosition, build_dead_letter
from stream.decoder import decode_record
from stream.dedupe import dedupe_key
from stream.events import EVENT_LEVEL, AttributeEvent, DeadLetter
from stream.replay import API_VERSION_HEADER
from stream.schemas import AvroSchema, SchemaRegistry
from stream.settings import Settings

SCHEMA_HEADER = "schema"
SCHEMA_VERSION_HEADER = "schemaVersion"
SDE_TYPE_HEADER = "sdeType"


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A raw conversation record as read from Kafka."""

    value: bytes | None
    key: bytes | None
    headers: Sequence[tuple[str, bytes]]
    source: SourcePosition


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to produce."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    timestamp_ms: int | None = None


@dataclass(slots=True)
class BatchOutcome:
    """What one batch produced and the counts the metrics need."""

    messages: list[Outgoing] = field(default_factory=list)
    # attribute key -> number of events published
    published: Counter[str] = field(default_factory=Counter)
    # attribute key -> number of repeats that were not published again
    duplicates: Counter[str] = field(default_factory=Counter)
    # attribute key -> fields no schema knows, dropped from decoded events
    unknown_fields: Counter[str] = field(default_factory=Counter)
    # (level, reason) -> number of dead letters
    dead_letters: Counter[tuple[str, str]] = field(default_factory=Counter)
    # source topic -> records and bytes read
    records: Counter[str] = field(default_factory=Counter)
    bytes_read: Counter[str] = field(default_factory=Counter)
    # records forwarded to the repartition topic instead of being decoded here
    forwarded: int = 0
    decode_seconds: list[float] = field(default_factory=list)
    # conversation -> (every digest now published, partition it was read from)
    remember: dict[bytes, tuple[set[bytes], int]] = field(default_factory=dict)
    # serverTimeStamp (ms) of each published event, for the event lag histogram
    event_timestamps_ms: list[int] = field(default_factory=list)


class SeenEvents(Protocol):
    """The dedupe state: which events of a conversation were already published."""

    def seen(self, conversation: bytes) -> set[bytes]:
        """Return the (mutable, owned by the caller) digests seen so far."""
        ...

    def remember(
        self, conversation: bytes, digests: set[bytes], partition: int
    ) -> None:
        """Store the digests of a conversation after its events were published."""
        ...


def remember_all(outcome: BatchOutcome, state: SeenEvents) -> None:
    """Store a batch's new dedupe digests, after its outputs were acknowledged."""
    for conversation, (digests, partition) in outcome.remember.items():
        state.remember(conversation, digests, partition)


class InMemorySeenEvents:
    """A dedupe state in a plain dict: for tests and the benchmark's reference."""

    def __init__(self) -> None:
        self.by_conversation: dict[bytes, set[bytes]] = {}

    def seen(self, conversation: bytes) -> set[bytes]:
        """Return a copy of the digests seen for a conversation."""
        return set(self.by_conversation.get(conversation, ()))

    def remember(
        self, conversation: bytes, digests: set[bytes], partition: int
    ) -> None:
        """Keep the digests of a conversation."""
        self.by_conversation[conversation] = digests


class BatchProcessor:
    """Decodes, dedupes and encodes batches of raw records for one worker."""

    def __init__(
        self,
        settings: Settings,
        registry: SchemaRegistry,
        repartition_topic: str | None = None,
    ) -> None:
        self.settings = settings
        self.repartition_topic = repartition_topic
        self.dead_letter_topic = settings.dead_letter_topic_name

        # Everything per attribute is looked up once here, not per event.
        self.routes: dict[str, tuple[str, AvroSchema, list[tuple[str, bytes]]]] = {}
        self.versions: dict[str, int] = {}
        published = registry.published_schemas(settings.published_versions)
        for attribute, schema in published.items():
            self.versions[attribute] = schema.version
            headers = [
                (SCHEMA_HEADER, schema.full_name.encode()),
                (SCHEMA_VERSION_HEADER, str(schema.version).encode()),
                (SDE_TYPE_HEADER, ATTRIBUTES[attribute].sde_type.encode()),
            ]
            topic = settings.attribute_topic_name(attribute)
            self.routes[attribute] = (topic, schema, headers)

    def process(self, records: Iterable[RawRecord], state: SeenEvents) -> BatchOutcome:
        """Turn a batch of raw records into messages and the dedupe state to store.

        The state itself is only read here. The conversations whose digests grew
        are returned in ``outcome.remember``; the caller stores them with
        ``remember_all`` once every message was acknowledged by the broker. A
        batch that fails to produce therefore leaves no trace in the state, and
        its records, consumed again after a restart, publish their events then.
        """
        outcome = BatchOutcome()
        for record in records:
            self._process_one(record, state, outcome.remember, outcome)
        return outcome

    def _process_one(
        self,
        record: RawRecord,
        state: SeenEvents,
        touched: dict[bytes, tuple[set[bytes], int]],
        outcome: BatchOutcome,
    ) -> None:
        raw = record.value if record.value is not None else b""
        topic = record.source.topic
        outcome.records[topic] += 1
        outcome.bytes_read[topic] += len(raw)

        started = time.perf_counter()
        result = decode_record(raw, self._api_version(record))
        outcome.decode_seconds.append(time.perf_counter() - started)

        conversation = _conversation_key(result.conversation_id)
        if self._must_repartition(record, conversation):
            assert conversation is not None and self.repartition_topic is not None
            outcome.messages.append(
                Outgoing(
                    self.repartition_topic, conversation, raw, list(record.headers)
                )
            )
            outcome.forwarded += 1
            return

        self._send_dead_letters(
            result.dead_letters, record, result.api_version, outcome
        )
        outcome.unknown_fields.update(result.unknown_fields)

        if not result.events or conversation is None:
            return
        if conversation in touched:
            digests = touched[conversation][0]
        else:
            digests = state.seen(conversation)
        before = len(digests)
        too_large = [
            letter
            for event in result.events
            if (letter := self._publish_once(event, conversation, digests, outcome))
        ]
        self._send_dead_letters(too_large, record, result.api_version, outcome)
        if len(digests) != before:
            touched[conversation] = (digests, record.source.partition)

    def _publish_once(
        self,
        event: AttributeEvent,
        conversation: bytes,
        digests: set[bytes],
        outcome: BatchOutcome,
    ) -> DeadLetter | None:
        """Publish an event not published before; a dead letter if it cannot be."""
        digest = dedupe_key(event)
        if digest in digests:
            outcome.duplicates[event.attribute] += 1
            return None

        topic, schema, headers = self.routes[event.attribute]
        value = encode_single_object(event, schema)
        size = len(conversation) + len(value)
        if size > MAX_MESSAGE_BYTES:
            # Only an absurdly long conversation id (key and value) gets here;
            # Kafka would refuse the message and stop the worker for good.
            return DeadLetter(
                level=EVENT_LEVEL,
                reason="value_too_long",
                message=f"conversationId: expected a typed event of at most"
                f" {MAX_MESSAGE_BYTES} bytes with its key, got {size}",
                sde_type=event.sde_type,
                field="conversationId",
                authenticated=event.authenticated,
                raw_event=event.to_json(),
                conversation_id=event.conversation_id,
            )
        digests.add(digest)
        outcome.messages.append(
            Outgoing(topic, conversation, value, headers, event.server_timestamp_ms)
        )
        outcome.published[event.attribute] += 1
        outcome.event_timestamps_ms.append(event.server_timestamp_ms)
        return None

    def _send_dead_letters(
        self,
        dead_letters: list[DeadLetter],
        record: RawRecord,
        api_version: int,
        outcome: BatchOutcome,
    ) -> None:
        raw = record.value if record.value is not None else b""
        for dead_letter in dead_letters:
            message = build_dead_letter(
                dead_letter, record.source, raw, api_version, record.key
            )
            outcome.messages.append(
                Outgoing(
                    self.dead_letter_topic, message.key, message.value, message.headers
                )
            )
            outcome.dead_letters[(dead_letter.level, dead_letter.reason)] += 1

    def _api_version(self, record: RawRecord) -> int | None:
        for name, value in record.headers:
            if name == API_VERSION_HEADER and value in (b"1", b"2"):
                return int(value)
        return self.settings.input_api_version

    def _must_repartition(self, record: RawRecord, conversation: bytes | None) -> bool:
        # Dedupe state is kept per partition, so a conversation must always be
        # processed in the partition its id hashes to. Records keyed by their
        # conversation id already are; others take one detour through the
        # repartition topic, which is keyed by conversation id. A record whose
        # id and bytes together exceed one Kafka message cannot take it (the
        # refused message would stop the worker), so it stays here.
        return (
            self.repartition_topic is not None
            and conversation is not None
            and record.key != conversation
            and record.source.topic != self.repartition_topic
            and len(conversation) + len(record.value or b"") <= MAX_MESSAGE_BYTES
        )


def _conversation_key(conversation_id: str | None) -> bytes | None:
    if conversation_id is None:
        return None
    # Lone surrogates were already dead-lettered by the decoder; this keeps
    # the key total for any id that reaches here.
    return conversation_id.encode("utf-8", "surrogatepass")
