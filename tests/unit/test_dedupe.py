"""The dedupe key: stable, canonical, and fine enough for batch stamps."""

from __future__ import annotations

import dataclasses

import pytest

from stream.dedupe import (
    DIGEST_SIZE,
    Deduplicator,
    canonical_json,
    dedupe_key,
    ecmascript_number,
)
from stream.events import AttributeEvent

EVENT = AttributeEvent(
    conversation_id="c0ffee00-0000-4000-8000-000000000001",
    brand_id="41325577",
    consumer_id="p-1",
    api_version=2,
    authenticated=False,
    sde_type="LEAD",
    attribute="lead",
    server_timestamp_ms=1718012345678,
    original_timestamp_ms=None,
    payload={"topic": "quote", "value": 12.5, "currency": "EUR", "leadId": "L-1"},
)


def test_key_is_stable_across_runs() -> None:
    assert len(dedupe_key(EVENT)) == DIGEST_SIZE
    assert dedupe_key(EVENT).hex() == "93cad54a3dcc144efa9efe2e543e2439"


def test_canonical_form_is_jcs() -> None:
    text = canonical_json({"b": [1, 3.0, None, True], "a": "é\n", "c": 10**20})

    assert text == '{"a":"é\\n","b":[1,3,null,true],"c":100000000000000000000}'


def test_keys_sort_by_utf16_code_units() -> None:
    # U+1F600 is the surrogate pair D83D DE00 in UTF-16, so it sorts before
    # U+FF61, unlike in code point order; ASCII keys sort as plain text.
    value = {"\U0001f600": 1, "\uff61": 2, "b": 3, "a": 4, "é": 5}

    assert canonical_json(value) == '{"a":4,"b":3,"é":5,"\U0001f600":1,"\uff61":2}'
    # The same keys in another order, after the order above was remembered.
    assert canonical_json(dict(reversed(value.items()))) == canonical_json(value)


class Text(str):
    pass


class Number(int):
    pass


class Double(float):
    pass


def test_subclasses_of_json_types_are_written_as_their_base() -> None:
    value = {"t": Text("x\n"), "n": Number(7), "d": Double(2.0), "b": [True]}

    assert canonical_json(value) == '{"b":[true],"d":2,"n":7,"t":"x\\n"}'


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (3.0, "3"),
        (-0.0, "0"),
        (12.5, "12.5"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (0.000001, "0.000001"),
        (5e-324, "5e-324"),
        (-400.99, "-400.99"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
    ],
)
def test_doubles_use_the_ecmascript_form(number: float, text: str) -> None:
    assert ecmascript_number(number) == text


def test_batch_events_sharing_type_and_stamp_differ() -> None:
    other = dataclasses.replace(EVENT, payload={**EVENT.payload, "leadId": "L-2"})

    assert dedupe_key(other) != dedupe_key(EVENT)


def test_verbatim_repeat_is_equal_whatever_the_envelope_says() -> None:
    repeat = dataclasses.replace(
        EVENT,
        consumer_id=None,
        brand_id=None,
        api_version=1,
        payload=dict(EVENT.payload),
    )

    assert dedupe_key(repeat) == dedupe_key(EVENT)


@pytest.mark.parametrize(
    "change",
    [
        {"authenticated": True},
        {"original_timestamp_ms": 1718012345000},
        {"conversation_id": "other"},
        {"server_timestamp_ms": 1718012345679},
    ],
)
def test_identity_fields_change_the_key(change: dict[str, object]) -> None:
    assert dedupe_key(dataclasses.replace(EVENT, **change)) != dedupe_key(EVENT)  # type: ignore[arg-type]


def test_deduplicator_passes_first_copies_only() -> None:
    other = dataclasses.replace(EVENT, sde_type="X")
    deduplicator = Deduplicator()

    assert list(deduplicator.distinct([EVENT, other, EVENT])) == [EVENT, other]
    assert not deduplicator.first_time(other)
