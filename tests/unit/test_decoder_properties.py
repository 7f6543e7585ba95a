"""Properties over arbitrary input: no raise, typed output, both parsers agree."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream import decoder
from stream.attributes import ATTRIBUTES, BY_SDE_TYPE, Kind
from stream.events import EVENT_REASONS, RECORD_REASONS, AttributeEvent
from tests.unit.conftest import all_corpus_records

SETTINGS = settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["", " 12.5 ", "1,000", "TRUE", "6", "3.0", "1e999", "\ud800"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
EXTRA_NAMES = ["year", "month", "day", "product", "quantity", "personalContact"]
field_names = st.sampled_from(
    [*sorted({n for spec in ATTRIBUTES.values() for n, _ in spec.fields}), *EXTRA_NAMES]
)
attribute_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(field_names, inner, max_size=5)
    ),
    max_leaves=25,
)
stamps = st.one_of(
    st.integers(min_value=900_000_000_000, max_value=4_200_000_000_000),
    st.integers(min_value=900_000_000_000, max_value=4_200_000_000_000).map(str),
    scalars,
)


@st.composite
def attribute_events(draw: Any) -> Any:
    key = draw(st.sampled_from(sorted(ATTRIBUTES)))
    wrapper = draw(st.dictionaries(field_names, attribute_values, max_size=6))
    if ATTRIBUTES[key].nested and draw(st.booleans()):
        wrapper[key] = draw(st.dictionaries(field_names, attribute_values, max_size=6))
    wrapper["serverTimeStamp"] = draw(stamps)
    event: dict[str, Any] = {key: wrapper}
    sde_type = draw(st.sampled_from([ATTRIBUTES[key].sde_type, None, "NOPE", 3]))
    if sde_type is not None or draw(st.booleans()):
        event["sdeType"] = sde_type
    return event if draw(st.integers(0, 9)) else draw(json_values)


@st.composite
def records(draw: Any) -> Any:
    info = {"conversationId": draw(st.sampled_from(["c-1", "", None, 5])) or "c-2"}
    value: dict[str, Any] = {"info": info}
    for key in ("sdes", "unAuthSdes"):
        if draw(st.booleans()):
            value[key] = {"events": draw(st.lists(attribute_events(), max_size=4))}
    return value


def encoded(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8", "surrogatepass")


def check_outcome(raw: bytes) -> None:
    result = decoder.decode_record(raw, None)

    assert result.api_version in (1, 2)
    for event in result.events:
        check_event(event)
    for dead_letter in result.dead_letters:
        reasons = RECORD_REASONS if dead_letter.level == "record" else EVENT_REASONS
        assert dead_letter.reason in reasons
        assert dead_letter.message
    json.dumps([e.to_json() for e in result.events], allow_nan=False)


def check_event(event: AttributeEvent) -> None:
    spec = BY_SDE_TYPE[event.sde_type]
    assert event.attribute == spec.key
    assert 946_684_800_000 <= event.server_timestamp_ms < 4_102_444_800_000
    assert list(event.payload) == [name for name, _ in spec.fields]
    for name, kind in spec.fields:
        check_kind(event.payload[name], kind)


def check_kind(value: Any, kind: Kind) -> None:
    if kind in (Kind.PRODUCTS, Kind.CONTACTS, Kind.KEYWORDS):
        assert type(value) is list
        return
    if value is None:
        return
    expected = {
        Kind.STRING: str,
        Kind.DOUBLE: float,
        Kind.INT: int,
        Kind.COUNT: int,
        Kind.LONG: int,
        Kind.BOOLEAN: bool,
    }.get(kind, dict)
    assert type(value) is expected


def both_paths(raw: bytes) -> tuple[Any, Any]:
    fast = _outcome(decoder.decode_record(raw, None))
    try:
        exact = decoder._decode(raw, None, exact=True)
    except Exception as exc:  # the exact path must never raise either
        pytest.fail(f"exact path raised {exc!r}")
    return fast, _outcome(exact)


def _outcome(result: Any) -> Any:
    return (
        result.api_version,
        [e.to_json() for e in result.events],
        [d.to_json() for d in result.dead_letters],
    )


@SETTINGS
@given(records())
def test_any_record_decodes_without_raising(value: Any) -> None:
    check_outcome(encoded(value))


@SETTINGS
@given(json_values)
def test_any_json_value_decodes_without_raising(value: Any) -> None:
    check_outcome(encoded(value))


@SETTINGS
@given(st.binary(max_size=200))
def test_any_bytes_decode_without_raising(raw: bytes) -> None:
    check_outcome(raw)


@SETTINGS
@given(records())
def test_fast_and_exact_paths_agree_on_records(value: Any) -> None:
    fast, exact = both_paths(encoded(value))
    assert fast == exact


@SETTINGS
@given(st.binary(max_size=120) | json_values.map(encoded))
def test_fast_and_exact_paths_agree_on_anything(raw: bytes) -> None:
    fast, exact = both_paths(raw)
    assert fast == exact


@pytest.mark.parametrize(
    ("label", "raw"), [(label, raw) for label, raw, _ in all_corpus_records()]
)
def test_fast_and_exact_paths_agree_on_the_corpus(label: str, raw: bytes) -> None:
    fast, exact = both_paths(raw)
    assert fast == exact, label
