"""Raw record bytes to a JSON value, with the record-level checks of the contract.

Two parsers give the same answer. The fast one (orjson plus cheap counts) is
used whenever it can be trusted; the exact one (the standard library parser with
hooks) classifies every failure and keeps each number's source text, which some
coercions need (a JSON number in a string field becomes its text as written).
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import orjson

BOM = b"\xef\xbb\xbf"
MAX_NESTING = 512

# int() refuses longer digit strings (CPython's conversion limit); such a literal
# is kept as a float instead, which every coercion treats the same way.
_MAX_INT_DIGITS = 4000

# A JSON string (possibly unterminated, in invalid text) or one bracket.
_STRING = re.compile(r'"(?:[^"\\]+|\\.)*"?', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class RecordError(Exception):
    """The record as a whole cannot be decoded.

    Attributes:
        reason: a record-level reason code.
        message: what was expected and what came.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class NeedsExactParse(Exception):
    """The fast parse cannot answer this record or this value; use the exact one."""


class JsonInt(int):
    """A JSON integer from the exact parser, remembering its source text."""

    text: str

    def __new__(cls, text: str) -> JsonInt:
        """Build the integer from its literal."""
        number = super().__new__(cls, text)
        number.text = text
        return number


class JsonFloat(float):
    """A JSON number with a fraction or exponent, remembering its source text."""

    text: str

    def __new__(cls, text: str) -> JsonFloat:
        """Build the (possibly infinite) double from its literal."""
        number = super().__new__(cls, text)
        number.text = text
        return number


def strip_bom(raw: bytes) -> bytes:
    """The record without one leading UTF-8 byte order mark."""
    return raw[3:] if raw.startswith(BOM) else raw


def parse_fast(raw: bytes) -> Any:
    """Parse a BOM-free record with orjson when the answer is certain.

    Raises:
        NeedsExactParse: the record may be too deep, invalid, hold duplicate
            keys or non-finite numbers; only the exact parser can tell.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise NeedsExactParse from exc

    try:
        dumped = orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        # orjson writes at most 254 levels, fewer than a record may hold.
        raise NeedsExactParse from exc
    # That limit is also the nesting check: a value orjson could write again
    # is at most 254 deep, within MAX_NESTING, and no bracket count is needed
    # (it cost a tenth of json.loads). A test pins the limit.
    if not _no_duplicate_keys(raw, dumped):
        raise NeedsExactParse
    return value


def _no_duplicate_keys(raw: bytes, dumped: bytes) -> bool:
    """Whether the parsed value, serialized again, kept every member of the text.

    Compact records come back byte for byte, which proves it at once. Else
    count colons: outside strings, a colon in valid JSON separates a key from
    its value, and the serialized value writes every colon of every string
    literally, so with no member lost its count equals the input's count plus
    the colons the input wrote as escapes. A dropped duplicate makes it
    smaller; an escape over-count only sends a clean record to the exact parser.
    """
    if dumped == raw:
        return True
    escaped = raw.count(b"\\u003a") + raw.count(b"\\u003A")
    return dumped.count(b":") == raw.count(b":") + escaped


def parse_exact(raw: bytes) -> Any:
    """Parse a BOM-free record, checking the record-level reasons in order.

    Numbers come back as JsonInt or JsonFloat, which carry their source text.

    Raises:
        RecordError: invalid_encoding, nesting_too_deep, invalid_json,
            duplicate_key or non_finite_number.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(
            "invalid_encoding",
            f"expected UTF-8, got byte {raw[exc.start]:#04x} at offset {exc.start}",
        ) from exc

    depth = nesting_depth(text)
    if depth > MAX_NESTING:
        raise RecordError(
            "nesting_too_deep",
            f"expected at most {MAX_NESTING} nested arrays or objects, got {depth}",
        )

    return _ExactParser().parse(text)


def nesting_depth(text: str) -> int:
    """The deepest run of open arrays and objects outside strings.

    Works on any text, valid JSON or not: a closing bracket closes the latest
    open one whatever its kind, and never takes the depth below zero.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    depth = deepest = 0
    for char in brackets:
        depth = max(depth + _DEPTH_STEP[char], 0)
        deepest = max(deepest, depth)
    return deepest


class _ExactParser:
    """The standard library parser, noting duplicates and non-finite numbers."""

    def __init__(self) -> None:
        self.duplicate_key: str | None = None
        self.non_finite: str | None = None
        self._decoder = json.JSONDecoder(
            object_pairs_hook=self._object,
            parse_int=_json_int,
            parse_float=JsonFloat,
            parse_constant=self._constant,
        )

    def parse(self, text: str) -> Any:
        """Parse text, then report what the hooks noticed.

        Raises:
            RecordError: invalid_json, duplicate_key or non_finite_number.
        """
        value = self._decode(text)
        if self.duplicate_key is not None:
            raise RecordError(
                "duplicate_key",
                f"expected unique keys in every object, got {self.duplicate_key!r}"
                " more than once",
            )
        if self.non_finite is not None:
            raise RecordError(
                "non_finite_number",
                f"expected finite JSON numbers, got {self.non_finite}",
            )
        return value

    def _decode(self, text: str) -> Any:
        try:
            return _with_fresh_stack(self._decoder.decode, text)
        except ValueError as exc:  # JSONDecodeError is a ValueError
            raise RecordError(
                "invalid_json", f"expected one JSON value, got an error: {exc}"
            ) from exc

    def _object(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        members = dict(pairs)
        if len(members) != len(pairs) and self.duplicate_key is None:
            self.duplicate_key = _first_repeated([key for key, _ in pairs])
        return members

    def _constant(self, name: str) -> float:
        if self.non_finite is None:
            self.non_finite = name
        return float(name)


def _first_repeated(keys: list[str]) -> str:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            return key
        seen.add(key)
    return ""


def _json_int(text: str) -> int | float:
    if len(text) > _MAX_INT_DIGITS:
        return JsonFloat(text)
    return JsonInt(text)


def _with_fresh_stack(decode: Any, text: str) -> Any:
    """Run the recursive parser, on a new thread if the caller's stack is deep.

    The nesting check allows 512 levels, which the parser may not fit under the
    recursion limit when called from deep inside a framework; a new thread
    starts with an empty Python stack.
    """
    try:
        return decode(text)
    except RecursionError:
        pass

    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(decode(text))
        except Exception as exc:  # handed to the caller below
            outcome.append(exc)

    worker = threading.Thread(target=run, name="exact-json-parse")
    worker.start()
    worker.join()
    if isinstance(outcome[0], Exception):
        raise outcome[0]
    return outcome[0]


def parse_record(raw: bytes, *, exact: bool = False) -> Any:
    """The JSON value of one record, BOM stripped, fast when it is safe.

    Args:
        raw: the record's bytes as they came from Kafka.
        exact: skip the fast parser (numbers then carry their source text).

    Raises:
        RecordError: a record-level reason, checked in contract order.
    """
    body = strip_bom(raw)
    if not exact:
        try:
            return parse_fast(body)
        except NeedsExactParse:
            pass
    return parse_exact(body)
