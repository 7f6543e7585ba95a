"""Event-level steps, envelope rules and version inference of decode_record."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stream.decoder import decode_record

CONVERSATION = "c0ffee00-0000-4000-8000-000000000001"
STAMP = 1718012345678


def record(
    events: list[Any], *, authenticated: bool = False, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "info": {"conversationId": CONVERSATION, "brandId": "41325577"},
        "consumerParticipants": [{"participantId": "p-1"}],
        ("sdes" if authenticated else "unAuthSdes"): {"events": events},
    }
    body.update(extra)
    return body


def lead(**fields: Any) -> dict[str, Any]:
    inner = {"topic": "t", "value": 1.5, "currency": "EUR", "leadId": "L1"} | fields
    return {"lead": {"lead": inner, "serverTimeStamp": STAMP}, "sdeType": "LEAD"}


def decode(value: Any, version: int | None = 2, *, raw: bytes | None = None) -> Any:
    data = raw if raw is not None else json.dumps(value).encode()
    return decode_record(data, version)


def only_dead_letter(value: Any, **kwargs: Any) -> dict[str, Any]:
    result = decode(value, **kwargs)
    assert not result.events
    (dead_letter,) = result.dead_letters
    return dead_letter.to_json()


def test_a_good_event_is_canonical() -> None:
    (event,) = decode(record([lead()])).events

    assert event.to_json() == {
        "conversationId": CONVERSATION,
        "brandId": "41325577",
        "consumerId": "p-1",
        "apiVersion": 2,
        "authenticated": False,
        "sdeType": "LEAD",
        "attribute": "lead",
        "serverTimeStamp": STAMP,
        "originalTimeStamp": None,
        "payload": {"topic": "t", "value": 1.5, "currency": "EUR", "leadId": "L1"},
    }


@pytest.mark.parametrize(
    ("event", "reason", "sde_type", "field"),
    [
        ("text", "unknown_sde_type", None, "sdeType"),
        ({"sdeType": 7, "lead": {}}, "unknown_sde_type", None, "sdeType"),
        ({"sdeType": "lead", "lead": {}}, "unknown_sde_type", "lead", "sdeType"),
        ({"lead": {}, "purchase": {}}, "unknown_sde_type", None, "sdeType"),
        ({"sdeType": None, "lead": []}, "unknown_sde_type", None, "sdeType"),
        ({"sdeType": "LEAD", "purchase": {}}, "sde_type_mismatch", "LEAD", "sdeType"),
        (
            {"sdeType": "LEAD", "lead": None},
            "missing_attribute_payload",
            "LEAD",
            "lead",
        ),
        ({"sdeType": "LEAD", "lead": "x"}, "type_mismatch", "LEAD", "lead"),
        ({"sdeType": "LEAD", "lead": 3}, "type_mismatch", "LEAD", "lead"),
        (
            {"sdeType": "LEAD", "lead": {}},
            "missing_timestamp",
            "LEAD",
            "serverTimeStamp",
        ),
        (
            {"sdeType": "LEAD", "lead": {"serverTimeStamp": "17e11"}},
            "type_mismatch",
            "LEAD",
            "serverTimeStamp",
        ),
        (
            {
                "sdeType": "LEAD",
                "lead": {"serverTimeStamp": STAMP, "originalTimeStamp": 5},
            },
            "timestamp_out_of_range",
            "LEAD",
            "originalTimeStamp",
        ),
        (
            {"sdeType": "LEAD", "lead": {"serverTimeStamp": STAMP, "lead": "x"}},
            "type_mismatch",
            "LEAD",
            "lead.lead",
        ),
    ],
)
def test_event_steps_name_the_first_failure(
    event: Any, reason: str, sde_type: str | None, field: str
) -> None:
    dead_letter = only_dead_letter(record([event]))

    assert dead_letter == {
        "level": "event",
        "reason": reason,
        "sdeType": sde_type,
        "field": field,
        "authenticated": False,
    }


@pytest.mark.parametrize(
    ("attribute", "body", "field", "reason"),
    [
        (
            "cartStatus",
            {"products": [{"quantity": 1, "price": "x"}]},
            "cartStatus.products[0].price",
            "type_mismatch",
        ),
        (
            "cartStatus",
            {"products": [{"quantity": 1}, {"product": {"price": "x"}}]},
            "cartStatus.products[1].product.price",
            "type_mismatch",
        ),
        ("cartStatus", {"products": [None]}, "cartStatus.products[0]", "type_mismatch"),
        (
            "cartStatus",
            {"products": [{"product": []}]},
            "cartStatus.products[0].product",
            "type_mismatch",
        ),
        (
            "cartStatus",
            {"numItems": -1, "total": "x"},  # total comes first
            "cartStatus.total",
            "type_mismatch",
        ),
        ("purchase", {"cart": "none"}, "purchase.cart", "type_mismatch"),
        (
            "purchase",
            {"cart": {"products": [{"quantity": 2**31}]}},
            "purchase.cart.products[0].quantity",
            "out_of_range",
        ),
        (
            "customerInfo",
            {"customerInfo": {"lastPaymentDate": {"year": 2024, "month": "x"}}},
            "customerInfo.lastPaymentDate.month",
            "type_mismatch",
        ),
        (
            "customerInfo",
            {
                "customerInfo": {
                    "registrationDate": {"year": 2023, "month": 2, "day": 29}
                }
            },
            "customerInfo.registrationDate",
            "invalid_date",
        ),
        (
            "personalInfo",
            {"personalInfo": {"contacts": [{"personalContact": {"email": True}}]}},
            "personalInfo.contacts[0].personalContact.email",
            "type_mismatch",
        ),
        (
            "personalInfo",
            {"personalInfo": {"customerAge": 30.0}},
            "personalInfo.customerAge",
            "type_mismatch",
        ),
        (
            "searchContent",
            {"keywords": ["a", 1]},
            "searchContent.keywords[1]",
            "type_mismatch",
        ),
        (
            "searchContent",
            {"keywords": ["x" * 50_001]},
            "searchContent.keywords[0]",
            "value_too_long",
        ),
        (
            "visitorError",
            {"visitorError": {"message": {"string": "boom"}}},
            "visitorError.message",
            "type_mismatch",
        ),
        (
            "visitorError",
            {"visitorError": {"resolved": "maybe"}},
            "visitorError.resolved",
            "type_mismatch",
        ),
    ],
)
def test_field_failures_name_their_path(
    attribute: str, body: dict[str, Any], field: str, reason: str
) -> None:
    sde_type = {
        "cartStatus": "CART_STATUS",
        "purchase": "PURCHASE",
        "customerInfo": "CUSTOMER_INFO",
        "personalInfo": "PERSONAL_INFO",
        "searchContent": "SEARCH_CONTENT",
        "visitorError": "VISITOR_ERROR",
    }[attribute]
    event = {"sdeType": sde_type, attribute: {"serverTimeStamp": STAMP, **body}}

    dead_letter = only_dead_letter(record([event], authenticated=True))

    assert (dead_letter["reason"], dead_letter["field"]) == (reason, field)
    assert dead_letter["authenticated"] is True


def test_siblings_of_a_bad_event_are_still_decoded() -> None:
    result = decode(record([lead(value="x"), lead(), {"sdeType": "NOPE"}]))

    assert len(result.events) == 1
    assert [d.reason for d in result.dead_letters] == [
        "type_mismatch",
        "unknown_sde_type",
    ]


def test_flat_forms_are_read() -> None:
    event = {
        "sdeType": "PERSONAL_INFO",
        "personalInfo": {
            "serverTimeStamp": str(STAMP),
            "originalTimeStamp": STAMP - 1,
            "name": "Ana",
            "contacts": [{"email": "a@example.com"}],
        },
    }

    (decoded,) = decode(record([event])).events

    assert decoded.payload["name"] == "Ana"
    assert decoded.payload["contacts"] == [{"email": "a@example.com", "phone": None}]
    assert decoded.original_timestamp_ms == STAMP - 1


def test_number_in_a_string_field_keeps_its_literal() -> None:
    raw = (
        b'{"info": {"conversationId": "c", "brandId": 41325577},'
        b' "sdes": {"events": [{"sdeType": "LEAD", "lead": {"serverTimeStamp":'
        b' 1718012345678, "lead": {"topic": 1.50, "leadId": 1e3, "value": 2}}}]}}'
    )

    (event,) = decode(None, raw=raw).events

    assert event.brand_id == "41325577"
    assert (event.payload["topic"], event.payload["leadId"]) == ("1.50", "1e3")
    assert event.payload["value"] == 2.0


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ([], "unexpected_envelope"),
        ({"conversationHistoryRecords": []}, "unexpected_envelope"),
        ({"info": None}, "unexpected_envelope"),
        ({"info": {"conversationId": "c"}, "sdes": []}, "unexpected_envelope"),
        (
            {"info": {"conversationId": "c"}, "sdes": {"events": {}}},
            "unexpected_envelope",
        ),
        ({"info": {}, "sdes": "x"}, "unexpected_envelope"),  # before the id
        ({"info": {}}, "missing_conversation_id"),
        ({"info": {"conversationId": ""}}, "missing_conversation_id"),
        ({"info": {"conversationId": 12}}, "missing_conversation_id"),
        ({"info": {"conversationId": "c\ud800"}}, "invalid_encoding"),
        ({"info": {"conversationId": "c", "brandId": "\udfff"}}, "invalid_encoding"),
        (
            {
                "info": {"conversationId": "c"},
                "consumerParticipant": [{"participantId": "\ud800"}],
            },
            "invalid_encoding",
        ),
    ],
)
def test_envelope_reasons(value: Any, reason: str) -> None:
    assert only_dead_letter(value) == {"level": "record", "reason": reason}


def test_surrogates_elsewhere_in_the_envelope_are_ignored() -> None:
    value = record([lead()])
    value["info"]["status"] = "\ud800"
    value["consumerParticipants"] = "\ud800"

    assert len(decode(value).events) == 1


@pytest.mark.parametrize(
    ("extra", "consumer_id"),
    [
        (
            {
                "consumerParticipants": [
                    5,
                    {"participantId": None},
                    {"participantId": 7},
                ]
            },
            "7",
        ),
        (
            {
                "consumerParticipants": {},
                "consumerParticipant": [{"participantId": "s"}],
            },
            "s",
        ),
        ({"consumerParticipants": [{"participantId": True}]}, None),
        ({"consumerParticipants": []}, None),
    ],
)
def test_consumer_id_is_the_first_usable_participant(
    extra: dict[str, Any], consumer_id: str | None
) -> None:
    value = record([lead()])
    value.pop("consumerParticipants")
    value.update(extra)

    (event,) = decode(value).events

    assert event.consumer_id == consumer_id


@pytest.mark.parametrize(("brand", "expected"), [(None, None), (12, "12"), ([], None)])
def test_brand_id_forms(brand: Any, expected: str | None) -> None:
    value = record([lead()])
    value["info"]["brandId"] = brand

    (event,) = decode(value).events

    assert event.brand_id == expected


def test_version_is_inferred_from_the_unauthenticated_list() -> None:
    with_unauth = record([lead()])
    without = record([lead()], authenticated=True)

    assert decode(with_unauth, None).api_version == 2
    assert decode(without, None).api_version == 1
    assert decode(None, None, raw=b"{").api_version == 1
    assert decode(without, 2).events[0].api_version == 2


def test_v1_record_with_unauthenticated_events_decodes_them_unauthenticated() -> None:
    (event,) = decode(record([lead()]), 1).events

    assert (event.api_version, event.authenticated) == (1, False)


@pytest.mark.parametrize(
    "value",
    [
        {"info": {"conversationId": "c"}},
        {"info": {"conversationId": "c"}, "sdes": None, "unAuthSdes": {}},
        {"info": {"conversationId": "c"}, "sdes": {"events": None}},
    ],
)
def test_records_without_attributes_yield_nothing(value: Any) -> None:
    result = decode(value)

    assert (result.events, result.dead_letters) == ([], [])
