"""Direct binary writing: AttributeEvents straight to single-object Avro bytes."""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

from stream.attributes import ATTRIBUTES, Field, Kind
from stream.avro_convert import (
    _CONTAINERS,
    _SCALARS,
    INT_RANGE,
    LONG_RANGE,
    TIMESTAMP_MS_RANGE,
    Converter,
    _boolean,
    _deref,
    _finite_double,
    _int,
    _Invalid,
    _long,
    _record_branch,
    _scalar_branch,
    _schema_mismatch,
    _string,
    _timestamp,
)
from stream.events import AttributeEvent
from stream.schemas import AvroSchema

# The datum the converters build (stream/avro_convert.py), handed to fastavro,
# cost about as much again as decoding the record: fastavro walks the schema
# generically and finds each union branch by name. For an AttributeEvent, a plan
# compiled once per schema checks each value as the converters do and appends its
# Avro binary encoding at once. It only ever takes the happy path: on anything
# unexpected it gives up, and the checked path (converters, then fastavro, in
# stream/avro_codec.py) decides, so errors stay exactly as they were. A test
# holds the two paths to the same bytes.

# Checks one value and appends the pieces of its binary encoding (no union
# branch index); the pieces are joined once per event, cheaper than growing bytes.
Emit = Callable[[list[bytes], Any], None]


class _FieldPlan(NamedTuple):
    """How one field of a record is written.

    Attributes:
        null: the union index bytes of null, or None when null is not allowed.
        branch: the union index bytes of the value's branch (empty if no union).
        text: whether the value is plain text, written inline by the loop.
        emit: checks and writes a (non-null) value of the branch.
    """

    null: bytes | None
    branch: bytes
    text: bool
    emit: Emit


_pack_double = struct.Struct("<d").pack
# The zigzag encodings of 0 to 63, one byte each: union branch indexes, counts
# and the lengths of short text.
_SMALL_LONGS = tuple(bytes([number << 1]) for number in range(64))


def _long_bytes(number: int) -> bytes:
    """Avro's long: zigzag, then seven bits a byte, least significant first."""
    if 0 <= number < 64:
        return _SMALL_LONGS[number]
    zigzag = (number << 1) ^ (number >> 63)
    out = bytearray()
    while zigzag > 0x7F:
        out.append(zigzag & 0x7F | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


def _write_fields(out: list[bytes], plans: Sequence[_FieldPlan], values: Any) -> None:
    """Write a record's field values, in schema order, by their plans."""
    # Not strict: the values come from a getter made for exactly these plans.
    for (null, branch, text, emit), value in zip(plans, values, strict=False):
        if value is None and null is not None:
            out.append(null)
            continue
        out.append(branch)
        if text and type(value) is str:
            # Text and null are most values: written here, without a call.
            data = value.encode()  # an unpaired surrogate raises
            size = len(data)
            out.append(_SMALL_LONGS[size] if size < 64 else _long_bytes(size))
            out.append(data)
        else:
            emit(out, value)


def _emit_text(out: list[bytes], value: Any) -> None:
    data = _string(value).encode()
    out.append(_long_bytes(len(data)))
    out.append(data)


def _emit_integer(low: int, high: int) -> Emit:
    def emit(out: list[bytes], value: Any) -> None:
        if type(value) is not int or not low <= value <= high:
            raise _Invalid("type_mismatch", "an integer in range", value)
        out.append(_long_bytes(value))

    return emit


def _emit_double(out: list[bytes], value: Any) -> None:
    out.append(_pack_double(_finite_double(value)))


def _emit_boolean(out: list[bytes], value: Any) -> None:
    out.append(b"\x01" if _boolean(value) else b"\x00")


# check -> the emitter that checks the same way and writes the typed value.
_TYPED_EMITTERS: dict[Converter, Emit] = {
    _string: _emit_text,
    _int: _emit_integer(*INT_RANGE),
    _long: _emit_integer(*LONG_RANGE),
    _timestamp: _emit_integer(*TIMESTAMP_MS_RANGE),
    _finite_double: _emit_double,
    _boolean: _emit_boolean,
}


def _value_plan(avro_type: Any, branch: str, convert: Converter) -> _FieldPlan:
    """The plan for a value written as one primitive branch, nullable or not."""
    emit = _TYPED_EMITTERS.get(convert)
    if emit is None:  # a typed value written as text, for version 1

        def emit(out: list[bytes], value: Any) -> None:
            _emit_text(out, convert(value))

    text = convert is _string
    if not isinstance(avro_type, list):
        return _FieldPlan(None, b"", text, emit)
    primitives = [b["type"] if isinstance(b, dict) else b for b in avro_type]
    return _FieldPlan(
        _long_bytes(primitives.index("null")),
        _long_bytes(primitives.index(branch)),
        text,
        emit,
    )


def _record_emitter(names: list[str], plans: list[_FieldPlan]) -> Emit:
    """An emitter for a dict with exactly the given fields, in schema order."""
    count = len(names)
    # One C call fetches every value; a missing name raises KeyError.
    values_of = itemgetter(*names) if count > 1 else lambda d: (d[names[0]],)

    def emit(out: list[bytes], value: Any) -> None:
        if type(value) is not dict or len(value) != count:
            raise _Invalid("type_mismatch", "an object with the schema's fields")
        _write_fields(out, plans, values_of(value))

    return emit


def _array_emitter(emit_item: Emit) -> Emit:
    """An emitter for a list: one block of items (if any), then the empty block."""

    def emit(out: list[bytes], value: Any) -> None:
        if type(value) is not list:
            raise _Invalid("type_mismatch", "a list", value)
        if value:
            out.append(_long_bytes(len(value)))
            for item in value:
                emit_item(out, item)
        out.append(b"\x00")

    return emit


def _field_plan(kind: Kind, avro_type: Any, named: dict[str, Any]) -> _FieldPlan:
    """The plan for one field; the counterpart of :func:`_converter`."""
    avro_type = _deref(avro_type, named)
    if kind in _SCALARS:
        _, branch, convert = _scalar_branch(kind, avro_type)
        return _value_plan(avro_type, branch, convert)
    if kind is Kind.KEYWORDS:
        return _FieldPlan(None, b"", False, _array_emitter(_emit_text))
    if kind in (Kind.PRODUCTS, Kind.CONTACTS):
        items = _deref(avro_type["items"], named)
        emit = _array_emitter(_fields_emitter(_CONTAINERS[kind], items, named))
        return _FieldPlan(None, b"", False, emit)

    # A date, cart or customerAge: null or one record branch of a union.
    record, fields = _record_branch(kind, avro_type, named)
    union = [_deref(b, named) for b in avro_type]
    return _FieldPlan(
        _long_bytes(avro_type.index("null")),
        _long_bytes(next(i for i, b in enumerate(union) if b is record)),
        False,
        _fields_emitter(fields, record, named),
    )


def _fields_emitter(
    fields: tuple[Field, ...], record: Any, named: dict[str, Any]
) -> Emit:
    """An emitter for an object whose fields are given by the attribute table."""
    avro_types = {f["name"]: f["type"] for f in record["fields"]}
    names = [name for name, _ in fields]
    if list(avro_types) != names:
        raise _schema_mismatch(f"the fields {names} in that order")
    plans = [_field_plan(kind, avro_types[name], named) for name, kind in fields]
    return _record_emitter(names, plans)


# The envelope of an AttributeEvent in the schema's field order: the event's
# attribute, the Avro branch its value is written as, and its check.
_ENVELOPE: tuple[tuple[str, str, Converter], ...] = (
    ("conversation_id", "string", _string),
    ("brand_id", "string", _string),
    ("consumer_id", "string", _string),
    ("api_version", "int", _int),
    ("authenticated", "boolean", _boolean),
    ("sde_type", "string", _string),
    ("server_timestamp_ms", "long", _timestamp),
    ("original_timestamp_ms", "long", _timestamp),
)
_EVENT_FIELDS = [
    "conversationId",
    "brandId",
    "consumerId",
    "apiVersion",
    "authenticated",
    "sdeType",
    "serverTimeStamp",
    "originalTimeStamp",
    "payload",
]


class _BinaryWriter:
    """Writes AttributeEvents of one attribute straight to one schema's bytes."""

    def __init__(self, schema: AvroSchema, named: dict[str, Any]):
        spec = ATTRIBUTES[schema.attribute]
        self.sde_type, self.attribute = spec.sde_type, spec.key
        self.header = schema.header
        fields = schema.parsed["fields"]
        if [f["name"] for f in fields] != _EVENT_FIELDS:
            raise _schema_mismatch(f"the fields {_EVENT_FIELDS} in that order")
        self.envelope_values = attrgetter(*(name for name, _, _ in _ENVELOPE))
        self.envelope = [
            _value_plan(field["type"], branch, check)
            for field, (_, branch, check) in zip(fields[:-1], _ENVELOPE, strict=True)
        ]
        self.payload = _fields_emitter(spec.fields, fields[-1]["type"], named)

    def write(self, event: AttributeEvent) -> bytes:
        """The single-object bytes of a valid event; raises on anything else."""
        if event.sde_type != self.sde_type or event.attribute != self.attribute:
            raise _Invalid("type_mismatch", "an event of the schema's attribute")
        out = [self.header]
        _write_fields(out, self.envelope, self.envelope_values(event))
        self.payload(out, event.payload)
        return b"".join(out)
