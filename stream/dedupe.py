"""The once-per-distinct-event key of the contract, and an in-process filter.

The key covers (conversationId, authenticated, sdeType, serverTimeStamp,
originalTimeStamp, payload), serialized as one JSON array in the JSON
Canonicalization Scheme (RFC 8785) and hashed, so it is the same in every
process and release. The envelope's brandId, consumerId and apiVersion are not
part of it: the first copy of an event wins, envelope included.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from json.encoder import encode_basestring as _escape_string
from typing import Any

from stream.events import AttributeEvent

DIGEST_SIZE = 16


def dedupe_key(event: AttributeEvent) -> bytes:
    """A 16-byte BLAKE2b digest of the event's identity, stable across runs."""
    identity = [
        event.conversation_id,
        event.authenticated,
        event.sde_type,
        event.server_timestamp_ms,
        event.original_timestamp_ms,
        event.payload,
    ]
    text = canonical_json(identity)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=DIGEST_SIZE).digest()


def canonical_json(value: Any) -> str:
    """RFC 8785 text of a decoded value: sorted keys, no spaces, ES numbers.

    Integers are written with all their digits; doubles in ECMAScript's
    shortest round-trip form (3.0 is "3", 1e21 is "1e+21").
    """
    if value is None:
        return "null"
    # Dispatch on the exact type first: one lookup instead of a chain of
    # isinstance tests, for the plain values decoding produces.
    write = _WRITERS.get(type(value))
    if write is None:
        return _canonical_subclass(value)
    return write(value)


def _canonical_subclass(value: Any) -> str:
    """The text of a value whose type only derives from a JSON type."""
    if isinstance(value, str):
        return _escape_string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return ecmascript_number(value)
    if isinstance(value, list):
        return _array(value)
    return _object(value)


def _boolean(value: bool) -> str:
    return "true" if value else "false"


def _array(value: list[Any]) -> str:
    return "[" + ",".join([canonical_json(item) for item in value]) + "]"


def _object(value: dict[str, Any]) -> str:
    members = [prefix + canonical_json(value[key]) for key, prefix in _members(value)]
    return "{" + ",".join(members) + "}"


# The keys of an object, in the order they come -> its members in canonical
# order, each with its '"key":' text. Decoded payloads have a few key sets, so
# each is sorted and escaped once; other objects are not remembered past the cap.
_MEMBER_ORDERS: dict[tuple[str, ...], list[tuple[str, str]]] = {}
_MEMBER_ORDERS_CAP = 1024


def _members(value: dict[str, Any]) -> list[tuple[str, str]]:
    keys = tuple(value)
    members = _MEMBER_ORDERS.get(keys)
    if members is None:
        members = [(key, _escape_string(key) + ":") for key in _sorted_keys(keys)]
        if len(_MEMBER_ORDERS) < _MEMBER_ORDERS_CAP:
            _MEMBER_ORDERS[keys] = members
    return members


def _sorted_keys(keys: tuple[str, ...]) -> list[str]:
    if all(key.isascii() for key in keys):
        # For ASCII keys, code point order is UTF-16 code unit order.
        return sorted(keys)
    return sorted(keys, key=lambda key: key.encode("utf-16-be"))


def ecmascript_number(number: float) -> str:
    """A finite double as ECMAScript's Number.prototype.toString writes it."""
    if number == 0:
        return "0"  # -0 too

    # repr() and ECMAScript agree on the shortest digits. Without an exponent
    # (1e-4 <= |x| < 1e16) they also agree on the layout, except that repr
    # writes an integral double with ".0" and ECMAScript without it.
    text = repr(number)
    if "e" not in text:
        return text[:-2] if text.endswith(".0") else text

    # repr() gives the shortest digits that round-trip; normalize() drops
    # the trailing zeros, leaving value = 0.DIGITS x 10**point.
    sign, digit_tuple, exponent = Decimal(repr(number)).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + int(exponent)
    text = _place_point(digits, point)
    return "-" + text if sign else text


def _place_point(digits: str, point: int) -> str:
    count = len(digits)
    if count <= point <= 21:
        return digits + "0" * (point - count)
    if 0 < point <= 21:
        return digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return "0." + "0" * -point + digits
    exponent = point - 1
    mantissa = digits if count == 1 else digits[0] + "." + digits[1:]
    return f"{mantissa}e{'+' if exponent > 0 else '-'}{abs(exponent)}"


# The exact types decoding produces -> how each is written (type(True) is
# bool, so booleans never reach int).
_WRITERS: dict[type, Callable[[Any], str]] = {
    # The C escaper behind json.dumps(..., ensure_ascii=False), called
    # directly: it escapes exactly what RFC 8785 asks (quote, backslash,
    # control characters) and is several times cheaper than json.dumps.
    str: _escape_string,
    bool: _boolean,
    int: int.__repr__,
    float: ecmascript_number,
    list: _array,
    dict: _object,
}


class Deduplicator:
    """Remembers the keys it has seen, to pass each distinct event once."""

    def __init__(self) -> None:
        self._seen: set[bytes] = set()

    def first_time(self, event: AttributeEvent) -> bool:
        """Whether this is the first copy of the event seen here."""
        key = dedupe_key(event)
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    def distinct(self, events: Iterable[AttributeEvent]) -> Iterator[AttributeEvent]:
        """The events not seen before, in their order."""
        return (event for event in events if self.first_time(event))
