"""Raw conversation record bytes to canonical attribute events and dead letters.

The event-level steps of the contract run in order (type, attribute object,
stamps, fields) and the first failure dead-letters that event only; its
siblings are still decoded. Nothing here raises, whatever the bytes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from stream.attributes import ATTRIBUTES, BY_SDE_TYPE, AttributeSpec
from stream.coerce import CoercionError, describe, mismatch, to_timestamp
from stream.envelope import Envelope, infer_api_version, read_envelope
from stream.events import (
    EVENT_LEVEL,
    RECORD_LEVEL,
    AttributeEvent,
    DeadLetter,
    DecodeResult,
)
from stream.payload import build_payload
from stream.record import NeedsExactParse, RecordError, parse_record


def decode_record(raw: bytes, api_version: int | None) -> DecodeResult:
    """Decode one raw conversation record.

    Args:
        raw: the record's bytes (UTF-8 JSON, optionally with a BOM).
        api_version: 1 or 2 when the pipeline knows it; None to infer it
            (a record with an ``unAuthSdes`` key is taken as 2, else 1).

    Returns:
        The events (not yet deduplicated) and dead letters, in record order.
    """
    try:
        return _decode(raw, api_version, exact=False)
    except NeedsExactParse:
        # Some value needs its source text, which only the exact parser keeps.
        return _decode(raw, api_version, exact=True)


def _decode(raw: bytes, api_version: int | None, *, exact: bool) -> DecodeResult:
    record: Any = None
    try:
        record = parse_record(raw, exact=exact)
        envelope = read_envelope(record)
    except RecordError as exc:
        # An unparsed record (None) infers as 1, the API's own default.
        version = api_version or infer_api_version(record)
        return DecodeResult(
            api_version=version,
            dead_letters=[DeadLetter(RECORD_LEVEL, exc.reason, exc.message)],
            conversation_id=_readable_conversation_id(record, exc.reason),
        )

    version = api_version or infer_api_version(record)
    result = DecodeResult(api_version=version, conversation_id=envelope.conversation_id)
    for authenticated, events in envelope.event_lists:
        for event in events:
            outcome = decode_event(event, authenticated, envelope, version)
            if type(outcome) is AttributeEvent:
                result.events.append(outcome)
                unknown = count_unknown_fields(event, outcome.attribute)
                if unknown:
                    counts = result.unknown_fields
                    counts[outcome.attribute] = (
                        counts.get(outcome.attribute, 0) + unknown
                    )
            else:
                result.dead_letters.append(outcome)  # type: ignore[arg-type]  # the other case
    return result


# Keys an event or an attribute object may carry besides the attribute's fields.
_EVENT_KEYS = frozenset(
    {"sdeType", "serverTimeStamp", "originalTimeStamp", "isAuthenticated", *ATTRIBUTES}
)
_STAMP_KEYS = frozenset({"serverTimeStamp", "originalTimeStamp", "isAuthenticated"})


class _KnownKeys(NamedTuple):
    """The keys each level of one attribute's events may carry."""

    nested: bool
    wrapper: frozenset[str]  # the attribute object around an inner object
    fields: frozenset[str]  # the inner object of a double-nested type
    flat: frozenset[str]  # an attribute object holding the fields itself


def _known_keys(spec: AttributeSpec) -> _KnownKeys:
    fields = frozenset(name for name, _ in spec.fields)
    wrapper = _STAMP_KEYS | {spec.key}
    return _KnownKeys(spec.nested, wrapper, fields, wrapper | fields)


# Made once, so that counting is one set difference per level.
_KNOWN_KEYS = {key: _known_keys(spec) for key, spec in ATTRIBUTES.items()}


def count_unknown_fields(event: dict[str, Any], attribute_key: str) -> int:
    """How many keys of a decoded event no schema knows (they are dropped).

    Counted at the event, the attribute object and, for double-nested types,
    the inner object; keys inside product lines, contacts or dates are not.
    """
    known = _KNOWN_KEYS[attribute_key]
    unknown = len(event.keys() - _EVENT_KEYS)
    wrapper = event[attribute_key]
    inner = wrapper.get(attribute_key) if known.nested else None
    if type(inner) is dict:
        unknown += len(wrapper.keys() - known.wrapper)
        unknown += len(inner.keys() - known.fields)
    else:
        unknown += len(wrapper.keys() - known.flat)
    return unknown


def _readable_conversation_id(record: Any, reason: str) -> str | None:
    if reason == "invalid_encoding" or type(record) is not dict:
        return None
    info = record.get("info")
    conversation_id = info.get("conversationId") if type(info) is dict else None
    # An empty id is no id: it must not key the dead letter or a forward.
    return conversation_id if type(conversation_id) is str and conversation_id else None


def decode_event(
    event: Any, authenticated: bool, envelope: Envelope, api_version: int
) -> AttributeEvent | DeadLetter:
    """Decode one element of an event list, or say why it cannot be.

    Args:
        event: the element as parsed.
        authenticated: whether it came from ``sdes``.
        envelope: what the record's events share.
        api_version: the version to write into the event.
    """
    spec, problem = _attribute_type(event)
    if spec is None:
        raw_type = event.get("sdeType") if type(event) is dict else None
        return DeadLetter(
            level=EVENT_LEVEL,
            reason="unknown_sde_type",
            message=problem,
            sde_type=raw_type if type(raw_type) is str else None,
            field="sdeType",
            authenticated=authenticated,
            raw_event=event,
            conversation_id=envelope.conversation_id,
        )

    try:
        attribute = _attribute_object(event, spec)
        server_ms = _stamp(event, attribute, "serverTimeStamp")
        if server_ms is None:
            raise CoercionError(
                "missing_timestamp",
                "expected serverTimeStamp on the event or in its attribute object",
                "serverTimeStamp",
            )
        original_ms = _stamp(event, attribute, "originalTimeStamp")
        payload = build_payload(spec, attribute)
    except CoercionError as exc:
        return DeadLetter(
            level=EVENT_LEVEL,
            reason=exc.reason,
            message=f"{exc.path}: {exc.message}",
            sde_type=spec.sde_type,
            field=exc.path,
            authenticated=authenticated,
            raw_event=event,
            conversation_id=envelope.conversation_id,
        )

    # Positional arguments: with ten of them, keywords doubled the cost of the call.
    return AttributeEvent(
        envelope.conversation_id,
        envelope.brand_id,
        envelope.consumer_id,
        api_version,
        authenticated,
        spec.sde_type,
        spec.key,
        server_ms,
        original_ms,
        payload,
    )


def _attribute_type(event: Any) -> tuple[AttributeSpec | None, str]:
    """Step 1: the attribute type named or implied, else why there is none."""
    if type(event) is not dict:
        return None, f"expected an event object, got {describe(event)}"

    sde_type = event.get("sdeType")
    if sde_type is None:
        present = _attribute_keys_present(event)
        if len(present) == 1:
            return ATTRIBUTES[present[0]], ""
        return None, (
            "expected an sdeType, or exactly one known attribute object to infer"
            f" it from, got {len(present)}"
        )

    spec = BY_SDE_TYPE.get(sde_type) if type(sde_type) is str else None
    if spec is None:
        return None, f"expected one of the ten sdeType values, got {describe(sde_type)}"
    return spec, ""


def _attribute_keys_present(event: dict[str, Any]) -> list[str]:
    """Known attribute keys whose value is an object."""
    return [key for key in ATTRIBUTES if type(event.get(key)) is dict]


def _attribute_object(event: dict[str, Any], spec: AttributeSpec) -> dict[str, Any]:
    """Step 2: the attribute object the sdeType calls for."""
    attribute = event.get(spec.key)
    if type(attribute) is dict:
        return attribute

    if attribute is not None:
        error = mismatch(f"an attribute object under {spec.key}", attribute)
        error.prefix(spec.key)
        raise error
    others = [key for key in _attribute_keys_present(event) if key != spec.key]
    if others:
        raise CoercionError(
            "sde_type_mismatch",
            f"expected a {spec.key} object for sdeType {spec.sde_type},"
            f" got {others[0]}",
            "sdeType",
        )
    raise CoercionError(
        "missing_attribute_payload",
        f"expected a {spec.key} object for sdeType {spec.sde_type}, got none",
        spec.key,
    )


def _stamp(event: dict[str, Any], attribute: dict[str, Any], name: str) -> int | None:
    """Step 3: a stamp from the event, else from the attribute object."""
    value = event.get(name)
    if value is None:
        value = attribute.get(name)
    if value is None:
        return None
    try:
        return to_timestamp(value)
    except CoercionError as exc:
        exc.prefix(name)
        raise
