"""Avro value checks and converters: canonical event values to Avro datum values.

Converters are built once per schema from the attribute table. Each checks a value
against its Avro type and returns what fastavro should write: the typed value for
version 2, its text for version 1. A value that does not fit raises _Invalid.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from stream.attributes import (
    CART_FIELDS,
    CONTACT_FIELDS,
    CUSTOMER_AGE_FIELDS,
    DATE_PARTS,
    PRODUCT_LINE_FIELDS,
    Field,
    Kind,
)
from stream.schemas import SchemaError

INT_RANGE = (-(2**31), 2**31 - 1)
LONG_RANGE = (-(2**63), 2**63 - 1)
# timestamp-millis values a reader can turn into a datetime (years 1 to 9999).
TIMESTAMP_MS_RANGE = (-62_135_596_800_000, 253_402_300_799_999)

Converter = Callable[[Any], Any]


class _Invalid(Exception):
    """A value that does not fit; raised deep down, given its path on the way up."""

    def __init__(self, reason: str, expected: str, got: Any = None):
        super().__init__(reason)
        self.reason = reason
        # The type of what came, never the value: values may be personal data.
        self.problem = f"expected {expected}" + (
            "" if reason.endswith("_field") else f", got {type(got).__name__}"
        )
        self.path: list[str] = []

    def at(self, step: str) -> _Invalid:
        """Prefix the path with one step (a field name or a list index)."""
        self.path.insert(0, step)
        return self


def _string(value: Any) -> str:
    if type(value) is str:
        return value
    raise _Invalid("type_mismatch", "text", value)


def _finite_double(value: Any) -> float:
    if type(value) is float and math.isfinite(value):
        return value
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:
            raise _Invalid("out_of_range", "a finite double", value) from None
    reason = "out_of_range" if type(value) is float else "type_mismatch"
    raise _Invalid(reason, "a finite double", value)


def _integer(low: int, high: int) -> Converter:
    def check(value: Any) -> int:
        # type() and not isinstance(): True is an int to Python, not to Avro.
        if type(value) is int and low <= value <= high:
            return value
        reason = "out_of_range" if type(value) is int else "type_mismatch"
        raise _Invalid(reason, f"an integer from {low} to {high}", value)

    return check


def _boolean(value: Any) -> bool:
    if type(value) is bool:
        return value
    raise _Invalid("type_mismatch", "a boolean", value)


def _boolean_text(value: bool) -> str:
    return "true" if value else "false"


_int = _integer(*INT_RANGE)
_long = _integer(*LONG_RANGE)
_timestamp = _integer(*TIMESTAMP_MS_RANGE)

# kind -> (Avro branch of the typed value, check, text form for version 1);
# repr is the shortest text that reads back as the same double.
_SCALARS: dict[Kind, tuple[str, Converter, Converter]] = {
    Kind.STRING: ("string", _string, str),
    Kind.DOUBLE: ("double", _finite_double, repr),
    Kind.INT: ("int", _int, str),
    Kind.COUNT: ("int", _int, str),
    Kind.LONG: ("long", _long, str),
    Kind.BOOLEAN: ("boolean", _boolean, _boolean_text),
}


def _scalar(kind: Kind, avro_type: Any) -> Converter:
    """A converter for one scalar: its typed branch if the schema has one, else text."""
    branches, branch, convert = _scalar_branch(kind, avro_type)
    if len(branches) == 1:
        return convert
    return _optional(branch, convert)


def _scalar_branch(kind: Kind, avro_type: Any) -> tuple[list[Any], str, Converter]:
    """The union branches, the branch a scalar is written as, and its converter."""
    branch, check, text = _SCALARS[kind]
    branches = avro_type if isinstance(avro_type, list) else [avro_type]
    if branch in branches:
        convert = check
    elif "string" in branches:
        branch = "string"

        def convert(value: Any) -> Any:
            return text(check(value))

    else:
        raise _schema_mismatch(f"{kind.value} as {avro_type}")

    if len(branches) > 1 and "null" not in branches:
        raise _schema_mismatch(f"{kind.value} as {avro_type}")
    return branches, branch, convert


def _optional(branch: str, convert: Converter) -> Converter:
    """A converter for a nullable union value: None, or the named branch's value."""
    # Tuple notation names the union branch, so fastavro need not guess it.
    return lambda value: None if value is None else (branch, convert(value))


def _record(fields: list[tuple[str, Converter]]) -> Converter:
    """A converter for an object with exactly the given fields."""
    count = len(fields)
    names = frozenset(name for name, _ in fields)

    def convert(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _Invalid("type_mismatch", "an object", value)
        if len(value) != count:
            raise _wrong_keys(value, names)
        out = {}
        for name, field_converter in fields:
            try:
                out[name] = field_converter(value[name])
            except KeyError:
                raise _wrong_keys(value, names) from None
            except _Invalid as exc:
                raise exc.at(name) from None
        return out

    return convert


def _wrong_keys(value: Mapping[str, Any], names: frozenset[str]) -> _Invalid:
    missing = sorted(names - value.keys())
    if missing:
        return _Invalid("missing_field", "a value (null when absent)").at(missing[0])
    extra = sorted(map(str, value.keys() - names))
    return _Invalid("unexpected_field", "no such field").at(extra[0])


def _array(item: Converter) -> Converter:
    def convert(value: Any) -> list[Any]:
        if type(value) is not list:
            raise _Invalid("type_mismatch", "a list", value)
        try:
            return [item(element) for element in value]
        except _Invalid as exc:
            index = next(i for i, e in enumerate(value) if _fails(item, e))
            raise exc.at(f"[{index}]") from None

    return convert


def _fails(convert: Converter, value: Any) -> bool:
    try:
        convert(value)
    except _Invalid:
        return True
    return False


def _schema_mismatch(what: str) -> SchemaError:
    return SchemaError(
        f"the schema cannot hold {what}; it does not mirror stream/attributes.py"
    )


_DATE_FIELDS: tuple[Field, ...] = tuple((part, Kind.INT) for part in DATE_PARTS)
_CONTAINERS: dict[Kind, tuple[Field, ...]] = {
    Kind.PRODUCTS: PRODUCT_LINE_FIELDS,
    Kind.CONTACTS: CONTACT_FIELDS,
    Kind.CART: CART_FIELDS,
    Kind.CUSTOMER_AGE: CUSTOMER_AGE_FIELDS,
}


def _converter(kind: Kind, avro_type: Any, named: dict[str, Any]) -> Converter:
    """A converter for one field of the given kind, written with the given Avro type."""
    avro_type = _deref(avro_type, named)
    if kind in _SCALARS:
        return _scalar(kind, avro_type)
    if kind is Kind.KEYWORDS:
        return _array(_string)
    if kind in (Kind.PRODUCTS, Kind.CONTACTS):
        items = avro_type["items"]
        return _array(_fields(_CONTAINERS[kind], _deref(items, named), named))

    # A date, cart or customerAge: null or one record branch of a union.
    record, fields = _record_branch(kind, avro_type, named)
    return _optional(record["name"], _fields(fields, record, named))


def _record_branch(
    kind: Kind, union: list[Any], named: dict[str, Any]
) -> tuple[dict[str, Any], tuple[Field, ...]]:
    """The record branch a date, cart or customerAge is written as, and its fields."""
    records = [_deref(b, named) for b in union if b != "null"]
    if kind is Kind.DATE:
        # The typed Date (int parts) wins over TextDate, the version 1 form.
        records.sort(key=lambda r: r["fields"][0]["type"] != "int")
        return records[0], _DATE_FIELDS
    return records[0], _CONTAINERS[kind]


def _deref(avro_type: Any, named: dict[str, Any]) -> Any:
    """The definition of a named type referenced by name, else the type itself."""
    if isinstance(avro_type, str):
        return named.get(avro_type, avro_type)
    return avro_type


def _fields(fields: tuple[Field, ...], record: Any, named: dict[str, Any]) -> Converter:
    """A converter for an object whose fields are given by the attribute table."""
    avro_types = {f["name"]: f["type"] for f in record["fields"]}
    if list(avro_types) != [name for name, _ in fields]:
        raise _schema_mismatch(f"the fields {[n for n, _ in fields]} in that order")
    return _record(
        [(name, _converter(kind, avro_types[name], named)) for name, kind in fields]
    )


def _constant(expected: str) -> Converter:
    def check(value: Any) -> str:
        if value == expected:
            return expected
        raise _Invalid("type_mismatch", repr(expected), value)

    return check


_optional_string = _optional("string", _string)
_optional_timestamp = _optional("long", _timestamp)
