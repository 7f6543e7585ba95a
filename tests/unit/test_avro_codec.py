"""The Avro codec: corpus round trips, framing, guards and decoding errors."""

from __future__ import annotations

import copy
import io
import math
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastavro import schemaless_reader, schemaless_writer

from stream.attributes import (
    ATTRIBUTES,
    CART_FIELDS,
    CONTACT_FIELDS,
    CUSTOMER_AGE_FIELDS,
    PRODUCT_LINE_FIELDS,
    Kind,
)
from stream.avro_codec import (
    SINGLE_OBJECT_MARKER,
    AvroDecodeError,
    AvroEncodeError,
    _writer_for,
    decode_single_object,
    encode_single_object,
    single_object_fingerprint,
    to_avro_datum,
)
from stream.events import AttributeEvent
from stream.schemas import SchemaRegistry
from tests.unit.conftest import edge_expected, sample_expected

REGISTRY = SchemaRegistry.load()


def corpus_events() -> list[tuple[str, dict[str, Any]]]:
    labelled = [
        (f"records-v{version}:{line['line']}:{index}", event)
        for version in (1, 2)
        for line in sample_expected(version)
        for index, event in enumerate(line["emit"])
    ]
    for name, case in edge_expected().items():
        labelled += [(f"{name}:{i}", e) for i, e in enumerate(case.get("emit", []))]
    return labelled


CORPUS = corpus_events()
EVENTS = [event for _, event in CORPUS]
IDS = [label for label, _ in CORPUS]


# --- round trips -------------------------------------------------------------


def test_the_corpus_covers_every_attribute() -> None:
    assert len(EVENTS) == 357
    assert {event["attribute"] for event in EVENTS} == set(ATTRIBUTES)


@pytest.mark.parametrize("event", EVENTS, ids=IDS)
def test_published_v2_round_trip_gives_back_the_same_event(
    event: dict[str, Any],
) -> None:
    schema = REGISTRY.published(event["attribute"])
    assert schema.version == 2

    data = encode_single_object(event, schema)

    assert decode_single_object(data, REGISTRY) == event
    assert decode_single_object(data, REGISTRY, reader_version=2) == event


def text_value(kind: Kind, value: Any) -> Any:
    """The version 1 text form of a typed value, written out independently."""
    if value is None or kind in (Kind.STRING, Kind.KEYWORDS):
        return value
    if kind is Kind.DOUBLE:
        return repr(float(value))
    if kind in (Kind.INT, Kind.COUNT, Kind.LONG):
        return str(value)
    if kind is Kind.BOOLEAN:
        return "true" if value else "false"
    if kind is Kind.DATE:
        return {part: str(value[part]) for part in ("year", "month", "day")}
    nested = {
        Kind.PRODUCTS: PRODUCT_LINE_FIELDS,
        Kind.CONTACTS: CONTACT_FIELDS,
        Kind.CART: CART_FIELDS,
        Kind.CUSTOMER_AGE: CUSTOMER_AGE_FIELDS,
    }[kind]
    if isinstance(value, list):
        return [text_object(nested, item) for item in value]
    return text_object(nested, value)


def text_object(fields: Any, value: dict[str, Any]) -> dict[str, Any]:
    return {name: text_value(kind, value[name]) for name, kind in fields}


def text_form(event: dict[str, Any]) -> dict[str, Any]:
    fields = ATTRIBUTES[event["attribute"]].fields
    return {**event, "payload": text_object(fields, event["payload"])}


@pytest.mark.parametrize("event", EVENTS, ids=IDS)
def test_v1_round_trip_gives_the_text_form(event: dict[str, Any]) -> None:
    data = encode_single_object(event, REGISTRY.get(event["attribute"], 1))

    decoded = decode_single_object(data, REGISTRY)

    assert decoded == text_form(event)
    # The newest schema reads it too, through the string branches.
    assert decode_single_object(data, REGISTRY, reader_version=2) == decoded


def test_text_form_examples() -> None:
    event = next(
        e
        for e in EVENTS
        if e["attribute"] == "customerInfo" and e["payload"]["balance"]
    )
    event = copy.deepcopy(event)
    event["payload"].update(
        balance=1e16,
        companySize=-7,
        lastPaymentDate={"year": 2024, "month": 2, "day": 29},
    )
    data = encode_single_object(event, REGISTRY.get("customerInfo", 1))

    payload = decode_single_object(data, REGISTRY)["payload"]

    assert payload["balance"] == "1e+16"
    assert payload["companySize"] == "-7"
    assert payload["lastPaymentDate"] == {"year": "2024", "month": "2", "day": "29"}


def typed(event: dict[str, Any]) -> AttributeEvent:
    """The AttributeEvent of a canonical event's JSON form."""
    return AttributeEvent(
        conversation_id=event["conversationId"],
        brand_id=event["brandId"],
        consumer_id=event["consumerId"],
        api_version=event["apiVersion"],
        authenticated=event["authenticated"],
        sde_type=event["sdeType"],
        attribute=event["attribute"],
        server_timestamp_ms=event["serverTimeStamp"],
        original_timestamp_ms=event["originalTimeStamp"],
        payload=event["payload"],
    )


def test_attribute_events_encode_like_their_json_form() -> None:
    event = next(e for e in EVENTS if e["attribute"] == "purchase")
    schema = REGISTRY.newest("purchase")

    assert encode_single_object(typed(event), schema) == encode_single_object(
        event, schema
    )


def test_pinned_versions_are_written_and_read_back() -> None:
    pins = {"lead": 1}
    event = next(e for e in EVENTS if e["attribute"] == "lead")

    data = encode_single_object(event, REGISTRY.published("lead", pins))

    assert single_object_fingerprint(data) == REGISTRY.get("lead", 1).fingerprint
    assert decode_single_object(data, REGISTRY) == text_form(event)


# --- framing -----------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2])
def test_single_object_frame(version: int) -> None:
    event = EVENTS[0]
    schema = REGISTRY.get(event["attribute"], version)

    data = encode_single_object(event, schema)

    assert data[:2] == b"\xc3\x01" == SINGLE_OBJECT_MARKER
    assert data[2:10] == schema.fingerprint.to_bytes(8, "little")
    assert int.from_bytes(data[2:10], "little") == schema.fingerprint
    body = io.BytesIO()
    schemaless_writer(body, schema.parsed, to_avro_datum(event, schema))
    assert data[10:] == body.getvalue()


def test_the_frame_of_a_known_schema_starts_with_known_bytes() -> None:
    lead = next(e for e in EVENTS if e["attribute"] == "lead")

    data = encode_single_object(lead, REGISTRY.get("lead", 2))

    assert data[:10].hex() == "c30115fc7a8a730e2cdf"


# --- time zones --------------------------------------------------------------


@pytest.fixture
def los_angeles() -> Iterator[None]:
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "America/Los_Angeles"
    time.tzset()
    try:
        assert time.timezone != 0
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


@pytest.mark.usefixtures("los_angeles")
def test_timestamps_are_the_same_instants_whatever_the_host_tz() -> None:
    for event in EVENTS:
        schema = REGISTRY.newest(event["attribute"])
        data = encode_single_object(event, schema)

        decoded = decode_single_object(data, REGISTRY)
        assert decoded["serverTimeStamp"] == event["serverTimeStamp"]
        assert decoded["originalTimeStamp"] == event["originalTimeStamp"]

        datum = schemaless_reader(io.BytesIO(data[10:]), schema.parsed)
        assert datum["serverTimeStamp"].utcoffset().total_seconds() == 0
        assert (
            round(datum["serverTimeStamp"].timestamp() * 1000)
            == event["serverTimeStamp"]
        )


# --- guards ------------------------------------------------------------------


def first(attribute: str, wanted: str) -> dict[str, Any]:
    """A copy of the first corpus event of an attribute whose payload has ``wanted``."""
    event = next(
        e for e in EVENTS if e["attribute"] == attribute and e["payload"][wanted]
    )
    return copy.deepcopy(event)


def lead() -> dict[str, Any]:
    return first("lead", "value")


def cart() -> dict[str, Any]:
    event = first("cartStatus", "products")
    assert len(event["payload"]["products"]) > 1
    return event


def info() -> dict[str, Any]:
    return first("customerInfo", "balance")


def changed(make: Any, path: str, value: Any) -> dict[str, Any]:
    """A copy of an event with one value replaced (or removed for DELETE)."""
    event = make()
    *parents, last = path.split(".")
    target = event
    for step in parents:
        target = target[int(step)] if isinstance(target, list) else target[step]
    key: Any = int(last) if isinstance(target, list) else last
    if value is DELETE:
        del target[key]
    else:
        target[key] = value
    return event


DELETE = object()


def bad(label: str, make: Any, path: str, value: Any, reason: str, field: str) -> Any:
    return pytest.param(make, path, value, reason, field, id=label)


BIG = 2**40
A_DATE = {"year": BIG, "month": 1, "day": 1}
PRODUCT = "payload.products"
LINE = f"{PRODUCT}.1"
QUANTITY = f"{PRODUCT}[1].quantity"
DATE = "payload.lastPaymentDate"
BAD_EVENTS = [
    bad("int beyond 32 bits", info, "payload.loginStatus", BIG, "out_of_range", ""),
    bad("fraction in an int", info, "payload.companySize", 1.9, "type_mismatch", ""),
    bad("boolean in an int", info, "payload.companySize", True, "type_mismatch", ""),
    bad("text in a double", lead, "payload.value", "12.5", "type_mismatch", ""),
    bad("NaN in a double", lead, "payload.value", math.nan, "out_of_range", ""),
    bad("huge int in a double", lead, "payload.value", 10**400, "out_of_range", ""),
    bad("number in a string", lead, "payload.topic", 7, "type_mismatch", ""),
    bad("missing payload field", lead, "payload.leadId", DELETE, "missing_field", ""),
    bad("unknown payload field", lead, "payload.score", 1.0, "unexpected_field", ""),
    bad("missing envelope key", lead, "brandId", DELETE, "missing_field", ""),
    bad("unknown envelope key", lead, "extra", 1, "unexpected_field", ""),
    bad("timestamp as text", lead, "serverTimeStamp", "17", "type_mismatch", ""),
    bad("timestamp past 9999", lead, "originalTimeStamp", 2**62, "out_of_range", ""),
    bad("authenticated as text", lead, "authenticated", "true", "type_mismatch", ""),
    bad("another sdeType", lead, "sdeType", "PURCHASE", "type_mismatch", ""),
    bad("products not a list", cart, PRODUCT, {}, "type_mismatch", ""),
    bad("line not an object", cart, LINE, "x", "type_mismatch", f"{PRODUCT}[1]"),
    bad("quantity < int", cart, f"{LINE}.quantity", -BIG, "out_of_range", QUANTITY),
    bad("date part > int", info, DATE, A_DATE, "out_of_range", f"{DATE}.year"),
]


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize(("make", "path", "value", "reason", "field"), BAD_EVENTS)
def test_the_codec_refuses_what_does_not_fit(
    version: int, make: Any, path: str, value: Any, reason: str, field: str
) -> None:
    event = changed(make, path, value)
    schema = REGISTRY.get(make()["attribute"], version)
    # The error names the changed value (the table gives it when not the path).
    field = field or path

    with pytest.raises(AvroEncodeError) as caught:
        encode_single_object(event, schema)

    assert caught.value.reason == reason
    assert caught.value.field == field
    assert caught.value.attribute == schema.attribute
    assert caught.value.retriable is False
    assert field in str(caught.value)


def test_a_missing_date_part_is_named() -> None:
    event = changed(info, "payload.lastPaymentDate", {"year": 2020, "month": 1})

    with pytest.raises(AvroEncodeError) as caught:
        encode_single_object(event, REGISTRY.newest("customerInfo"))

    assert caught.value.field == "payload.lastPaymentDate.day"
    assert caught.value.reason == "missing_field"


def test_errors_never_quote_the_value() -> None:
    event = changed(lead, "payload.topic", ["jane.doe@example.com"])

    with pytest.raises(AvroEncodeError) as caught:
        encode_single_object(event, REGISTRY.newest("lead"))

    assert "example.com" not in str(caught.value)
    assert "got list" in str(caught.value)


def test_an_event_for_the_wrong_schema_is_refused() -> None:
    with pytest.raises(AvroEncodeError, match="sdeType"):
        encode_single_object(lead(), REGISTRY.newest("purchase"))


# --- the direct writer -------------------------------------------------------


def checked_bytes(event: dict[str, Any], version: int) -> bytes:
    """The frame written the checked way: converters, then fastavro."""
    schema = REGISTRY.get(event["attribute"], version)
    body = io.BytesIO()
    datum = to_avro_datum(event, schema)
    schemaless_writer(body, schema.parsed, datum, strict=True)
    return schema.header + body.getvalue()


def direct_bytes(event: dict[str, Any], version: int) -> bytes:
    """The frame the direct writer gives an AttributeEvent (it raises if it cannot)."""
    schema = REGISTRY.get(event["attribute"], version)
    direct = _writer_for(schema).binary.write(typed(event))
    assert encode_single_object(typed(event), schema) == direct
    return direct


@pytest.mark.parametrize("version", [1, 2])
def test_attribute_events_are_written_as_the_checked_path_writes_them(
    version: int,
) -> None:
    for event in EVENTS:
        assert direct_bytes(event, version) == checked_bytes(event, version)


def many_lines() -> dict[str, Any]:
    event = cart()
    event["payload"]["products"] = event["payload"]["products"] * 40
    return event


LONG_TEXT = "é" * 70_000
EDGE_VALUES = [
    (lead, "payload.topic", "x" * 63),
    (lead, "payload.topic", "x" * 64),
    (lead, "payload.topic", LONG_TEXT),
    (lead, "payload.topic", "日本語 🎉"),
    (lead, "payload.topic", ""),
    (lead, "payload.value", 5),
    (lead, "payload.value", -0.0),
    (lead, "payload.value", 1e300),
    (lead, "payload.value", None),
    (lead, "serverTimeStamp", 0),
    (lead, "serverTimeStamp", -62_135_596_800_000),
    (lead, "originalTimeStamp", 253_402_300_799_999),
    (lead, "brandId", None),
    (lead, "apiVersion", -(2**31)),
    (info, "payload.companySize", 2**31 - 1),
    (info, "payload.loginStatus", -1),
    (info, "payload.lastPaymentDate", {"year": 2024, "month": 2, "day": 29}),
    (cart, "payload.products", []),
    (many_lines, "payload.numItems", 63),
]


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize(("make", "path", "value"), EDGE_VALUES)
def test_edge_values_are_written_as_the_checked_path_writes_them(
    version: int, make: Any, path: str, value: Any
) -> None:
    event = changed(make, path, value)

    assert direct_bytes(event, version) == checked_bytes(event, version)


def test_extreme_longs_are_written_as_the_checked_path_writes_them() -> None:
    event = first("visitorError", "level")
    for level in (-(2**63), -65, -64, -1, 0, 63, 64, 2**62, 2**63 - 1):
        event["payload"]["level"] = level
        assert direct_bytes(event, 2) == checked_bytes(event, 2)


def refusal(event: AttributeEvent | dict[str, Any], version: int) -> tuple[str, str]:
    schema = REGISTRY.get(event_attribute(event), version)
    with pytest.raises(AvroEncodeError) as caught:
        encode_single_object(event, schema)
    return caught.value.reason, str(caught.value)


def event_attribute(event: AttributeEvent | dict[str, Any]) -> str:
    return event.attribute if isinstance(event, AttributeEvent) else event["attribute"]


# Changes an AttributeEvent can hold (it always has every envelope key).
TYPED_BAD_EVENTS = [p for p in BAD_EVENTS if "envelope key" not in str(p.id)]


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize(("make", "path", "value", "reason", "field"), TYPED_BAD_EVENTS)
def test_attribute_events_are_refused_as_their_json_form_is(
    version: int, make: Any, path: str, value: Any, reason: str, field: str
) -> None:
    event = changed(make, path, value)

    assert refusal(typed(event), version) == refusal(event, version)


def test_an_unpaired_surrogate_is_refused_as_fastavro_refuses_it() -> None:
    event = changed(lead, "payload.topic", "\ud800")

    assert refusal(typed(event), 2) == refusal(event, 2)
    assert refusal(typed(event), 2)[1].startswith("fastavro refused")


# --- decoding errors ---------------------------------------------------------


def encoded_lead(version: int = 2) -> bytes:
    return encode_single_object(lead(), REGISTRY.get("lead", version))


@pytest.mark.parametrize(
    ("data", "reason", "message"),
    [
        (b"", "bad_marker", "expected single-object Avro"),
        (b"\xc3\x01\x00", "bad_marker", "got 3 bytes"),
        (b'{"json": true}', "bad_marker", "starting '7B 22'"),
        (b"\xc3\x02" + encoded_lead()[2:], "bad_marker", "marker C3 01"),
        (
            b"\xc3\x01" + bytes(8) + encoded_lead()[10:],
            "unknown_schema",
            "0x0000000000000000",
        ),
        (encoded_lead() + b"\x00", "corrupt_datum", "1 bytes left"),
        (encoded_lead()[:-3], "corrupt_datum", "corrupt engagementstream.v2.Lead"),
    ],
)
def test_decoding_errors_are_clear(data: bytes, reason: str, message: str) -> None:
    with pytest.raises(AvroDecodeError, match=message) as caught:
        decode_single_object(data, REGISTRY)

    assert caught.value.reason == reason


def test_an_older_reader_cannot_read_newer_data() -> None:
    with pytest.raises(
        AvroDecodeError, match="cannot read data written with"
    ) as caught:
        decode_single_object(encoded_lead(2), REGISTRY, reader_version=1)

    assert caught.value.reason == "incompatible_reader"


def test_an_unknown_reader_version_is_a_clear_error() -> None:
    with pytest.raises(AvroDecodeError, match="no schema version 7 for lead") as caught:
        decode_single_object(encoded_lead(1), REGISTRY, reader_version=7)

    assert caught.value.reason == "unknown_schema"
