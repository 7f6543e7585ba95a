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
from dataclasses import dataclass
from typing import Any

import orjson

from stream.events import RECORD_LEVEL, DeadLetter

REASON_HEADER = "deadLetterReason"
LEVEL_HEADER = "deadLetterLevel"


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
    return DeadLetterMessage(key=key, value=_dumps(body), headers=headers)


def _dumps(body: dict[str, Any]) -> bytes:
    # A raw event can hold lone surrogates, integers beyond 64 bits or literals
    # too large for a double, which orjson refuses; the standard library writes
    # the first two (as escapes and digits), and the last keeps its source text.
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(_finite(body), ensure_ascii=True).encode("ascii")


def _finite(value: Any) -> Any:
    """The value with every non-finite number replaced by its literal text."""
    if isinstance(value, float) and not math.isfinite(value):
        return getattr(value, "text", repr(value))
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value
