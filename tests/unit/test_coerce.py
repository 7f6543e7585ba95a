"""Every coercion rule of the contract at its boundaries."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from stream.coerce import (
    CoercionError,
    exact_integer,
    to_boolean,
    to_count,
    to_date,
    to_double,
    to_int,
    to_long,
    to_string,
    to_timestamp,
)
from stream.record import JsonFloat, JsonInt, NeedsExactParse

GOOD = [
    (to_double, 12.5, 12.5),
    (to_double, 3, 3.0),
    (to_double, JsonFloat("1.50"), 1.5),
    (to_double, " 12.5 ", 12.5),
    (to_double, "\t-400.99\n", -400.99),
    (to_double, ".5", 0.5),
    (to_double, "5.", 5.0),
    (to_double, "1e3", 1000.0),
    (to_double, "+2", 2.0),
    (to_double, "", None),
    (to_double, "  ", None),
    (to_int, 2**31 - 1, 2**31 - 1),
    (to_int, -(2**31), -(2**31)),
    (to_int, JsonFloat("3.0"), 3),
    (to_int, JsonFloat("1e3"), 1000),
    (to_int, "6", 6),
    (to_int, " 7 ", 7),
    (to_int, "3.0", 3),
    (to_int, "2.5e1", 25),
    (to_int, "", None),
    (to_count, 0, 0),
    (to_count, "12", 12),
    (to_long, 2**63 - 1, 2**63 - 1),
    (to_long, "3", 3),
    (to_boolean, True, True),
    (to_boolean, "TRUE", True),
    (to_boolean, " false\t", False),
    (to_boolean, "True", True),
    (to_boolean, "", None),
    (to_string, " Gabriella ", " Gabriella "),
    (to_string, JsonInt("4444"), "4444"),
    (to_string, JsonFloat("1.50"), "1.50"),
    (to_string, JsonFloat("1e3"), "1e3"),
    (to_string, JsonFloat("1e999"), "1e999"),
    (to_string, JsonInt("-0"), "-0"),
    (to_string, "x" * 50_000, "x" * 50_000),
    (to_string, "é" * 50_000, "é" * 50_000),
    (to_string, "😀" * 50_000, "😀" * 50_000),
    (
        to_date,
        {"year": 2024, "month": 2, "day": 29},
        {"year": 2024, "month": 2, "day": 29},
    ),
    (
        to_date,
        {"year": "2024", "month": "6", "day": "1"},
        {"year": 2024, "month": 6, "day": 1},
    ),
    (to_date, {"year": 1, "month": 1, "day": 1}, {"year": 1, "month": 1, "day": 1}),
    (
        to_date,
        {"year": 9999, "month": 12, "day": 31},
        {"year": 9999, "month": 12, "day": 31},
    ),
    (to_date, {"year": 0, "month": 0, "day": 0}, None),
    (to_date, {"year": "0", "month": "0", "day": "0"}, None),
    (to_date, {"year": "", "month": None}, None),
    (to_date, {}, None),
    (to_date, "", None),
    (to_timestamp, 946_684_800_000, 946_684_800_000),
    (to_timestamp, 4_102_444_799_999, 4_102_444_799_999),
    (to_timestamp, "1718012345678", 1718012345678),
    (to_timestamp, "0001718012345678", 1718012345678),
    (to_timestamp, JsonFloat("1718012345678.0"), 1718012345678),
    (to_timestamp, JsonFloat("1.718012345678e12"), 1718012345678),
]

BAD = [
    (to_double, "1,000", "type_mismatch"),
    (to_double, "12.5\u00a0", "type_mismatch"),  # NBSP is not ASCII space
    (to_double, "$12", "type_mismatch"),
    (to_double, "NaN", "type_mismatch"),
    (to_double, "Infinity", "type_mismatch"),
    (to_double, "1_000", "type_mismatch"),
    (to_double, "١٢", "type_mismatch"),  # Arabic-Indic digits
    (to_double, True, "type_mismatch"),
    (to_double, {}, "type_mismatch"),
    (to_double, [], "type_mismatch"),
    (to_double, JsonFloat("1e999"), "out_of_range"),
    (to_double, JsonFloat("-1e999"), "out_of_range"),
    (to_double, "1e999", "out_of_range"),
    (to_double, JsonInt("9" * 400), "out_of_range"),
    (to_int, 2**31, "out_of_range"),
    (to_int, -(2**31) - 1, "out_of_range"),
    (to_int, "2147483648", "out_of_range"),
    (to_int, JsonFloat("3.5"), "type_mismatch"),
    (to_int, 3.5, "type_mismatch"),
    (to_int, "3.5", "type_mismatch"),
    (to_int, JsonFloat("3.0000000000000001"), "type_mismatch"),
    (to_int, JsonFloat("2147483647.5"), "type_mismatch"),
    (to_int, JsonFloat("1e-999999999999"), "type_mismatch"),
    (to_int, JsonFloat("1e999"), "out_of_range"),
    (to_int, JsonFloat("1e999999999999999999999"), "out_of_range"),
    (to_int, "1,000", "type_mismatch"),
    (to_int, True, "type_mismatch"),
    (to_count, -1, "out_of_range"),
    (to_count, "-2", "out_of_range"),
    (to_count, JsonFloat("-2.5"), "type_mismatch"),
    (to_long, 2**63, "out_of_range"),
    (to_long, JsonFloat("1e999"), "out_of_range"),
    (to_boolean, "yes", "type_mismatch"),
    (to_boolean, 1, "type_mismatch"),
    (to_boolean, "t", "type_mismatch"),
    (to_boolean, [], "type_mismatch"),
    (to_string, True, "type_mismatch"),
    (to_string, {"string": "x"}, "type_mismatch"),
    (to_string, ["x"], "type_mismatch"),
    (to_string, "x" * 50_001, "value_too_long"),
    (to_string, "😀" * 50_001, "value_too_long"),
    (to_string, "a\ud800b", "invalid_encoding"),
    (to_string, "\udc00" * 60_000, "invalid_encoding"),
    (to_string, JsonFloat("1" * 50_001), "value_too_long"),
    (to_date, {"year": 2024, "month": 13, "day": 1}, "invalid_date"),
    (to_date, {"year": 2023, "month": 2, "day": 29}, "invalid_date"),
    (to_date, {"year": 2024, "month": 4, "day": 31}, "invalid_date"),
    (to_date, {"year": 10000, "month": 1, "day": 1}, "invalid_date"),
    (to_date, {"year": 0, "month": 1, "day": 1}, "invalid_date"),
    (to_date, {"year": 2024, "month": 0, "day": 1}, "invalid_date"),
    (to_date, {"year": 2024}, "invalid_date"),
    (to_date, {"year": -1, "month": 1, "day": 1}, "invalid_date"),
    (to_date, "2024-01-01", "type_mismatch"),
    (to_date, " ", "type_mismatch"),
    (to_date, 20240101, "type_mismatch"),
    (to_date, [], "type_mismatch"),
    (to_timestamp, 946_684_799_999, "timestamp_out_of_range"),
    (to_timestamp, 4_102_444_800_000, "timestamp_out_of_range"),
    (to_timestamp, 1718012345, "timestamp_out_of_range"),
    (to_timestamp, -1, "timestamp_out_of_range"),
    (to_timestamp, JsonFloat("1e999"), "timestamp_out_of_range"),
    (to_timestamp, "9" * 5000, "timestamp_out_of_range"),
    (to_timestamp, JsonFloat("1718012345678.5"), "type_mismatch"),
    (to_timestamp, "-1718012345678", "type_mismatch"),
    (to_timestamp, " 1718012345678", "type_mismatch"),
    (to_timestamp, "1.718012345678e12", "type_mismatch"),
    (to_timestamp, "", "type_mismatch"),
    (to_timestamp, True, "type_mismatch"),
    (to_timestamp, {}, "type_mismatch"),
]


def _name(case: tuple[Any, ...]) -> str:
    return f"{case[0].__name__}-{str(case[1])[:30]!r}"


@pytest.mark.parametrize(("coerce", "value", "expected"), GOOD, ids=map(_name, GOOD))
def test_accepted_input_becomes_its_typed_value(
    coerce: Any, value: Any, expected: Any
) -> None:
    result = coerce(value)

    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(("coerce", "value", "reason"), BAD, ids=map(_name, BAD))
def test_refused_input_names_its_reason(coerce: Any, value: Any, reason: str) -> None:
    with pytest.raises(CoercionError) as caught:
        coerce(value)

    assert caught.value.reason == reason
    assert "expected" in caught.value.message


@pytest.mark.parametrize(
    ("date", "path", "reason"),
    [
        ({"year": 2024, "month": "x", "day": 1}, ".month", "type_mismatch"),
        ({"year": 2024, "month": 1.5, "day": 1}, ".month", "type_mismatch"),
        ({"year": 2**31, "month": 1, "day": 1}, ".year", "out_of_range"),
        ({"year": 2024, "month": 1, "day": True}, ".day", "type_mismatch"),
    ],
)
def test_a_bad_date_part_is_named(date: Any, path: str, reason: str) -> None:
    with pytest.raises(CoercionError) as caught:
        to_date(date)

    assert (caught.value.reason, caught.value.path) == (reason, path)


@pytest.mark.parametrize(
    ("coerce", "value"),
    [(to_string, 4444), (to_string, 1.5), (to_int, 3.0), (to_timestamp, 1.7e12)],
)
def test_fast_parser_values_without_source_text_ask_for_the_exact_parse(
    coerce: Any, value: Any
) -> None:
    with pytest.raises(NeedsExactParse):
        coerce(value)


PLAIN_DIGITS = ["0", "-0", "+0", "007", "+5", "-42", "2147483647", "9" * 30]
NOT_PLAIN = ["-" + "9" * 31, "1" + "0" * 30, "12.0", "1e3", "-1.5", "1.5e1"]


@pytest.mark.parametrize("text", PLAIN_DIGITS + NOT_PLAIN)
def test_integral_text_reads_as_decimal_reads_it(text: str) -> None:
    # Plain digits skip Decimal; the answer must be the one Decimal gives.
    number = Decimal(text)
    expected: Any = min(max(int(number), -(10**30)), 10**30)
    if number != int(number):
        expected = "type_mismatch"
    try:
        got: Any = exact_integer(text, "an integer")
    except CoercionError as exc:
        got = exc.reason

    assert got == expected
