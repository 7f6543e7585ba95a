"""What decoding produces: canonical attribute events and dead letters.

These are plain values, never changed once built, shared by the decoder, the
Avro codec, the dead letter queue and the worker. Their JSON forms are the ones
of the decoding contract (record-format notes, section 10.1) and of the
``decode`` command.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RECORD_LEVEL = "record"
EVENT_LEVEL = "event"

# Record-level reasons, in the order the decoder checks them.
RECORD_REASONS = (
    "invalid_encoding",
    "nesting_too_deep",
    "invalid_json",
    "duplicate_key",
    "non_finite_number",
    "unexpected_envelope",
    "missing_conversation_id",
)
EVENT_REASONS = (
    "unknown_sde_type",
    "missing_attribute_payload",
    "sde_type_mismatch",
    "missing_timestamp",
    "timestamp_out_of_range",
    "type_mismatch",
    "out_of_range",
    "invalid_date",
    "value_too_long",
    "invalid_encoding",
)


# Not frozen, though nothing changes an event once built: a frozen dataclass
# sets each field through object.__setattr__, which made building an event
# cost five times as much (about a microsecond, three or four per record).
@dataclass(slots=True)
class AttributeEvent:
    """One distinct engagement attribute event, typed (contract section 10.1).

    Attributes:
        conversation_id: ``info.conversationId`` of the record.
        brand_id: ``info.brandId`` as text, or None.
        consumer_id: the first consumer participant's id as text, or None.
        api_version: the Messaging Interactions API version (1 or 2).
        authenticated: True when the event came from ``sdes``.
        sde_type: the attribute type, e.g. "LEAD".
        attribute: the attribute key, e.g. "lead".
        server_timestamp_ms: when LivePerson processed the event, epoch ms UTC.
        original_timestamp_ms: when the event was created, epoch ms UTC, or None.
        payload: every field of the attribute type, typed, None when absent.
    """

    conversation_id: str
    brand_id: str | None
    consumer_id: str | None
    api_version: int
    authenticated: bool
    sde_type: str
    attribute: str
    server_timestamp_ms: int
    original_timestamp_ms: int | None
    payload: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The canonical event as the contract writes it."""
        return {
            "conversationId": self.conversation_id,
            "brandId": self.brand_id,
            "consumerId": self.consumer_id,
            "apiVersion": self.api_version,
            "authenticated": self.authenticated,
            "sdeType": self.sde_type,
            "attribute": self.attribute,
            "serverTimeStamp": self.server_timestamp_ms,
            "originalTimeStamp": self.original_timestamp_ms,
            "payload": self.payload,
        }


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Something that could not be decoded, and why.

    Attributes:
        level: "record" (the whole raw record) or "event" (one attribute event).
        reason: a reason code from RECORD_REASONS or EVENT_REASONS.
        message: a readable sentence: what was expected, what came.
        sde_type: the event's sdeType when known (event level), else None.
        field: dotted path of the offending value rooted at the attribute key
            (``cartStatus.products[1].quantity``), or None at record level.
        authenticated: whether the event came from ``sdes`` (event level).
        raw_event: the event exactly as parsed (event level), for the dead
            letter queue; None at record level, where the raw bytes are kept.
        conversation_id: the record's conversation id when it could be read.
    """

    level: str
    reason: str
    message: str
    sde_type: str | None = None
    field: str | None = None
    authenticated: bool | None = None
    raw_event: Any = None
    conversation_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The short form used by the ``decode`` command and the corpus files."""
        if self.level == RECORD_LEVEL:
            return {"level": self.level, "reason": self.reason}
        return {
            "level": self.level,
            "reason": self.reason,
            "sdeType": self.sde_type,
            "field": self.field,
            "authenticated": self.authenticated,
        }


@dataclass(slots=True)
class DecodeResult:
    """Everything one raw record decoded to.

    Attributes:
        api_version: the version used: given by the caller, else inferred.
        events: canonical events in record order (not yet deduplicated).
        dead_letters: record- or event-level dead letters.
        conversation_id: the record's conversation id, when it could be read.
        unknown_fields: attribute key -> how many fields of its decoded events
            no schema knows (dropped), at event, wrapper and field level.
    """

    api_version: int
    events: list[AttributeEvent] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    conversation_id: str | None = None
    unknown_fields: dict[str, int] = field(default_factory=dict)
