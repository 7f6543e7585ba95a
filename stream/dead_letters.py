"""The dead letter queue: one JSON message per thing that could not be decoded.

A dead letter says why (reason, field path, a readable message), where the input
came from (topic, partition, offset, timestamp) and carries the input itself: the
raw record as base64 at record level, the raw event as JSON at event level, so an
operator can replay it after a fix.
"""

from __future__ import annotations

import base64
import json
import math
import threading
from dataclasses import dataclass
from typing import Any

import orjson

from stream.events import RECORD_LEVEL, DeadLetter

REASON_HEADER = "deadLetterReason"
LEVEL_HEADER = "deadLetterLevel"
# Key plus value of one output message at most: under the smallest default
# limit on the way (faust's producer_max_request_size, 1,000,000 bytes, which
# counts the record's framing and headers too), with room for those.
MAX_MESSAGE_BYTES = 990_000
RAW_OMITTED = "too large for one message; read it at the source position"


@dataclass(frozen=True, slots=True)
class SourcePosition:
    """Where a raw record was read: ``topic[partition]@offset``."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass(frozen=True, slots=True)
class DeadLetterMessage:
    """A dead letter ready to produce."""

    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def build_dead_letter(
    dead_letter: DeadLetter,
    source: SourcePosition,
    raw_record: bytes,
    api_version: int,
    source_key: bytes | None,
) -> DeadLetterMessage:
    """Turn a decoder dead letter into the message for the dead letter topic."""
    body: dict[str, Any] = {
        "reason": dead_letter.reason,
        "level": dead_letter.level,
        "sdeType": dead_letter.sde_type,
        "field": dead_letter.field,
        "authenticated": dead_letter.authenticated,
        "message": dead_letter.message,
        "conversationId": dead_letter.conversation_id,
        "apiVersion": api_version,
        "source": {
            "topic": source.topic,
            "partition": source.partition,
            "offset": source.offset,
            "timestamp": source.timestamp_ms,
        },
    }
    if dead_letter.level == RECORD_LEVEL:
        body["rawRecord"] = base64.b64encode(raw_record).decode("ascii")
    else:
        body["rawEvent"] = dead_letter.raw_event

    key = source_key
    if dead_letter.conversation_id is not None:
        key = dead_letter.conversation_id.encode("utf-8", "surrogatepass")
    headers = [
        (REASON_HEADER, dead_letter.reason.encode("ascii")),
        (LEVEL_HEADER, dead_letter.level.encode("ascii")),
    ]
    value = _dumps(body)
    if _too_large(key, value):
        # Kafka refuses a message over about 1 MB (by default), and a refused
        # dead letter would stop the worker at every redelivery of its record.
        # The reason and the source position stay; they locate the input.
        raw_field = "rawRecord" if dead_letter.level == RECORD_LEVEL else "rawEvent"
        body[raw_field] = None
        body["rawOmitted"] = RAW_OMITTED
        value = _dumps(body)
    if _too_large(key, value):
        # Only the unbounded text taken from the input can still be that long.
        body["conversationId"] = key = None
        value = _dumps(body)
    if _too_large(key, value):
        body["sdeType"] = None
        value = _dumps(body)
    return DeadLetterMessage(key=key, value=value, headers=headers)


def _too_large(key: bytes | None, value: bytes) -> bool:
    return len(value) + len(key or b"") > MAX_MESSAGE_BYTES


def _dumps(body: dict[str, Any]) -> bytes:
    # A raw event can hold lone surrogates, integers beyond 64 bits, literals
    # too large for a double or more than 254 levels, which orjson refuses; the
    # standard library writes the first two (as escapes and digits) and any
    # depth a record may have, and the third keeps its source text.
    try:
        return orjson.dumps(body)
    except TypeError:
        pass
    finite = _finite(body)
    try:
        return _ascii_json(finite)
    except RecursionError:
        pass
    # Up to 512 levels may not fit above a deep caller; a new thread's stack
    # starts empty.
    written: list[bytes] = []
    writer = threading.Thread(
        target=lambda: written.append(_ascii_json(finite)), name="dead-letter-json"
    )
    writer.start()
    writer.join()
    return written[0]


def _ascii_json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=True).encode("ascii")


def _finite(value: Any) -> Any:
    """A copy of the value with every non-finite number replaced by its literal.

    Walks with its own stack, not by recursion: a raw event may nest as deep
    as a record may (512 levels).
    """
    root = [value]
    pending: list[tuple[Any, Any]] = [(root, 0)]
    while pending:
        container, slot = pending.pop()
        item = container[slot]
        if isinstance(item, float) and not math.isfinite(item):
            container[slot] = getattr(item, "text", repr(item))
        elif isinstance(item, dict):
            container[slot] = members = dict(item)
            pending.extend((members, key) for key in members)
        elif isinstance(item, list):
            container[slot] = elements = list(item)
            pending.extend((elements, index) for index in range(len(elements)))
    return root[0]
