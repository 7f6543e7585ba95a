"""One JSON value to one typed field value, by the coercion table of the contract.

Every function takes a value that is present and not null (callers decide what
absence means), returns the typed value (None where the contract maps the
input to null) or raises CoercionError. Values from the fast parser carry no
source text; when a rule needs it, they raise NeedsExactParse instead.
"""

from __future__ import annotations

import datetime
import re
from decimal import Decimal
from typing import Any

from stream.attributes import DATE_PARTS
from stream.record import JsonFloat, JsonInt, NeedsExactParse

MAX_TEXT_CODE_POINTS = 50_000
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Event stamps must fall in [2000-01-01, 2100-01-01) UTC, in epoch milliseconds.
STAMP_MIN_MS = 946_684_800_000
STAMP_END_MS = 4_102_444_800_000

ASCII_SPACE = " \t\n\r\x0b\x0c"
_NUMERIC_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Integers this large are out of every range checked here; clamping them keeps
# the arithmetic small whatever the literal says.
_HUGE = 10**30
_MAX_EXPONENT_DIGITS = 9
# Up to this many plain digits (below _HUGE) are read with int() directly.
_PLAIN_DIGITS = 30


class CoercionError(Exception):
    """A value that does not fit its field.

    Attributes:
        reason: an event-level reason code.
        message: what was expected and what came.
        path: where the value sits, relative until the caller prefixes it.
    """

    def __init__(self, reason: str, message: str, path: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.path = path

    def prefix(self, segment: str) -> None:
        """Put the enclosing path segment in front of the path."""
        self.path = segment + self.path


def describe(value: Any) -> str:
    """A short description of a JSON value for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, JsonInt | JsonFloat):
        return f"the number {value.text[:40]}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        shown = value[:40] + ("..." if len(value) > 40 else "")
        return f"the text {shown!r}"
    return "an array" if isinstance(value, list) else "an object"


def mismatch(expected: str, value: Any) -> CoercionError:
    """A type_mismatch error saying what was expected and what came."""
    return CoercionError("type_mismatch", f"expected {expected}, got {describe(value)}")


def to_string(value: Any) -> str:
    """Text kept exactly; a JSON number becomes its literal as written."""
    if type(value) is str:
        if value.isascii() and len(value) <= MAX_TEXT_CODE_POINTS:
            return value
        return checked_text(value)
    if isinstance(value, JsonInt | JsonFloat):
        return checked_text(value.text)
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise NeedsExactParse
    raise mismatch("text", value)


def checked_text(text: str) -> str:
    """Text after the encoding and length checks."""
    if not text.isascii() and _SURROGATE.search(text):
        raise CoercionError(
            "invalid_encoding", "expected Unicode text, got an unpaired surrogate"
        )
    if len(text) > MAX_TEXT_CODE_POINTS:
        raise CoercionError(
            "value_too_long",
            f"expected at most {MAX_TEXT_CODE_POINTS} characters, got {len(text)}",
        )
    return text


def to_double(value: Any) -> float | None:
    """A finite double from a number or numeric text; blank text is null."""
    kind = type(value)
    if kind is float:
        return value  # type: ignore[no-any-return]  # orjson never yields inf
    if kind is str:
        value = _numeric_text(value, "a double")
        if value is None:
            return None
    elif kind is not int and kind is not JsonInt and kind is not JsonFloat:
        raise mismatch("a double (number or numeric text)", value)
    return _finite(value)


def _finite(value: Any) -> float:
    try:
        number = float(value)
    except OverflowError:
        number = float("inf")
    if number in (float("inf"), float("-inf")):
        raise CoercionError(
            "out_of_range", f"expected a finite double, got {describe(value)}"
        )
    return number


def _numeric_text(text: str, expected: str) -> str | None:
    """Numeric text without its surrounding ASCII whitespace; None when blank."""
    stripped = text.strip(ASCII_SPACE)
    if not stripped:
        return None
    if not _NUMERIC_TEXT.fullmatch(stripped):
        raise mismatch(expected, text)
    return stripped


def to_int(value: Any) -> int | None:
    """A 32-bit integer."""
    return _integer(value, INT32_MIN, INT32_MAX, "a 32-bit integer")


def to_count(value: Any) -> int | None:
    """A 32-bit integer that is not negative (quantity, numItems)."""
    return _integer(value, 0, INT32_MAX, "a count (32-bit, not negative)")


def to_long(value: Any) -> int | None:
    """A 64-bit integer."""
    return _integer(value, INT64_MIN, INT64_MAX, "a 64-bit integer")


def _integer(value: Any, low: int, high: int, expected: str) -> int | None:
    if type(value) is int and low <= value <= high:
        return value  # the common case, first
    number = exact_integer(value, expected)
    if number is None:
        return None
    if not low <= number <= high:
        raise CoercionError(
            "out_of_range", f"expected {expected}, got {describe(value)}"
        )
    return number


def exact_integer(value: Any, expected: str) -> int | None:
    """The integer a value stands for, judged on its exact decimal value.

    Returns None for blank text. Magnitudes beyond 10**30 come back clamped.

    Raises:
        CoercionError: type_mismatch for fractions and non-numbers.
        NeedsExactParse: an integral-looking double from the fast parser,
            whose literal may have had a fraction the double lost.
    """
    kind = type(value)
    if kind is int or kind is JsonInt:
        return max(-_HUGE, min(int(value), _HUGE))
    if kind is float:
        if value.is_integer():
            raise NeedsExactParse
        raise mismatch(expected, value)

    if kind is JsonFloat:
        literal = value.text
    elif kind is str:
        stripped = _numeric_text(value, expected)
        if stripped is None:
            return None
        literal = stripped
    else:
        raise mismatch(expected, value)

    number = _integral_literal(literal)
    if number is None:
        raise mismatch(expected, value)
    return number


def _integral_literal(literal: str) -> int | None:
    """The exact integer of a numeric literal, or None when it has a fraction."""
    digits = literal[1:] if literal[0] in "+-" else literal
    if len(digits) <= _PLAIN_DIGITS and digits.isascii() and digits.isdigit():
        return int(literal)  # the common case (numeric text in v1), not Decimal
    number = Decimal(_clamp_exponent(literal))
    if number != number.to_integral_value():
        return None
    if number.copy_abs() > _HUGE:  # copy_abs is exact; abs() rounds to context
        return _HUGE if number > 0 else -_HUGE
    return int(number)


def _clamp_exponent(literal: str) -> str:
    """The literal with an absurd exponent cut to nine digits.

    Decimal refuses exponents beyond about 10**18. Cutting one to 999999999
    keeps the answers that matter: a fraction stays a fraction, a huge value
    stays huge, zero stays zero.
    """
    mantissa, _, exponent = literal.lower().partition("e")
    digits = exponent.lstrip("+-").lstrip("0")
    if len(digits) <= _MAX_EXPONENT_DIGITS:
        return literal
    sign = "-" if exponent.startswith("-") else ""
    return f"{mantissa}e{sign}{'9' * _MAX_EXPONENT_DIGITS}"


def to_boolean(value: Any) -> bool | None:
    """A boolean, or "true"/"false" text in any case; blank text is null."""
    if value is True or value is False:
        return value
    if type(value) is str:
        word = value.strip(ASCII_SPACE)
        if not word:
            return None
        if word.isascii() and word.lower() in ("true", "false"):
            return word.lower() == "true"
    raise mismatch('a boolean (or the text "true"/"false")', value)


def to_date(value: Any) -> dict[str, int] | None:
    """A calendar date {year, month, day}; placeholder dates are null."""
    if value == "":
        return None
    if type(value) is not dict:
        raise mismatch("a date object {year, month, day}", value)

    parts = {part: _date_part(value, part) for part in DATE_PARTS}

    given = [number for number in parts.values() if number]
    if not given:
        return None
    if len(given) < len(DATE_PARTS):
        raise CoercionError(
            "invalid_date", f"expected a whole date or none, got {_show(parts)}"
        )
    return _calendar_date(parts)


def _date_part(date: dict[str, Any], part: str) -> int | None:
    value = date.get(part)
    if value is None:
        return None
    try:
        return to_int(value)
    except CoercionError as exc:
        exc.prefix("." + part)
        raise


def _calendar_date(parts: dict[str, int | None]) -> dict[str, int]:
    year, month, day = (parts[part] or 0 for part in DATE_PARTS)
    try:
        datetime.date(year, month, day)  # years 1 to 9999, real months and days
    except ValueError as exc:
        raise CoercionError(
            "invalid_date", f"expected a calendar date, got {_show(parts)}"
        ) from exc
    return {"year": year, "month": month, "day": day}


def _show(parts: dict[str, int | None]) -> str:
    return "-".join("?" if parts[part] is None else str(parts[part]) for part in parts)


def to_timestamp(value: Any) -> int:
    """Epoch milliseconds within [2000-01-01, 2100-01-01) from a number or digits.

    Raises:
        CoercionError: type_mismatch or timestamp_out_of_range.
    """
    if type(value) is int and STAMP_MIN_MS <= value < STAMP_END_MS:
        return value  # the common case, first

    expected = "epoch milliseconds (an integer or digits)"
    if type(value) is str:
        if not (value.isascii() and value.isdigit()):
            raise mismatch(expected, value)
        digits = value.lstrip("0") or "0"
        number = int(digits) if len(digits) <= 30 else _HUGE
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = exact_integer(value, expected) or 0
    else:
        raise mismatch(expected, value)

    if not STAMP_MIN_MS <= number < STAMP_END_MS:
        raise CoercionError(
            "timestamp_out_of_range",
            f"expected epoch milliseconds in [2000-01-01, 2100-01-01),"
            f" got {describe(value)}",
        )
    return number
