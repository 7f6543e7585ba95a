"""The record envelope: identifiers and the two attribute event lists."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from stream.record import JsonFloat, JsonInt, NeedsExactParse, RecordError

# (record key, whether its events are authenticated), in decoding order
EVENT_LISTS = (("sdes", True), ("unAuthSdes", False))
PARTICIPANT_LISTS = ("consumerParticipants", "consumerParticipant")
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Envelope:
    """What every event of a record shares.

    Attributes:
        conversation_id: ``info.conversationId``, non-empty text.
        brand_id: ``info.brandId`` as text, or None.
        consumer_id: the first consumer participant id as text, or None.
        event_lists: (authenticated, events) for each non-empty event list.
    """

    conversation_id: str
    brand_id: str | None
    consumer_id: str | None
    event_lists: tuple[tuple[bool, list[Any]], ...]


def infer_api_version(record: Any) -> int:
    """The API version a record most likely came from: 2 if it has unAuthSdes."""
    return 2 if type(record) is dict and "unAuthSdes" in record else 1


def read_envelope(record: Any) -> Envelope:
    """Check the envelope and read what the events need.

    Raises:
        RecordError: unexpected_envelope, missing_conversation_id, or
            invalid_encoding for an unpaired surrogate in an identifier.
        NeedsExactParse: an identifier is a number without its source text.
    """
    info = record.get("info") if type(record) is dict else None
    if type(info) is not dict:
        raise RecordError(
            "unexpected_envelope",
            "expected a conversation record (an object with an info object)",
        )
    event_lists = _event_lists(record)

    conversation_id = info.get("conversationId")
    if type(conversation_id) is not str or not conversation_id:
        raise RecordError(
            "missing_conversation_id",
            "expected info.conversationId as non-empty text",
        )

    brand_id = info.get("brandId")
    participant_ids = _participant_ids(record)
    _check_surrogates(conversation_id, brand_id, participant_ids)

    return Envelope(
        conversation_id,
        _identifier_text(brand_id),
        _consumer_id(participant_ids),
        event_lists,
    )


# Lists and loops rather than generators below: this runs once per record, and
# a generator's set-up cost more than the work for the usual one or two items.


def _event_lists(record: dict[str, Any]) -> tuple[tuple[bool, list[Any]], ...]:
    found = []
    for key, authenticated in EVENT_LISTS:
        container = record.get(key)
        if container is None:
            continue
        if type(container) is not dict:
            raise RecordError(
                "unexpected_envelope", f"expected {key} to be an object or null"
            )
        events = container.get("events")
        if events is None:
            continue
        if type(events) is not list:
            raise RecordError(
                "unexpected_envelope", f"expected {key}.events to be an array or null"
            )
        if events:
            found.append((authenticated, events))
    return tuple(found)


def _participant_ids(record: dict[str, Any]) -> list[Any]:
    """The participantId of every object entry of both participant lists."""
    ids = []
    for key in PARTICIPANT_LISTS:
        entries = record.get(key)
        if type(entries) is not list:
            continue
        for entry in entries:
            if type(entry) is dict:
                ids.append(entry.get("participantId"))
    return ids


def _consumer_id(participant_ids: list[Any]) -> str | None:
    """The first participant id that is text or a number, as text."""
    for participant_id in participant_ids:
        if _is_id(participant_id):
            return _identifier_text(participant_id)
    return None


def _check_surrogates(
    conversation_id: str, brand_id: Any, participant_ids: list[Any]
) -> None:
    for value in (conversation_id, brand_id, *participant_ids):
        if type(value) is str and not value.isascii() and _SURROGATE.search(value):
            raise RecordError(
                "invalid_encoding",
                "expected Unicode text in the envelope identifiers,"
                " got an unpaired surrogate",
            )


def _is_id(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _identifier_text(value: Any) -> str | None:
    """Text as is, a number as its literal, anything else None."""
    if type(value) is str:
        return value
    if isinstance(value, JsonInt | JsonFloat):
        return value.text
    if _is_id(value):
        raise NeedsExactParse
    return None
