"""Avro codec: canonical attribute events to framed single-object Avro and back.

Writing builds an Avro datum from the canonical event with a converter made once
per schema (typed values for version 2, text for version 1), checks every value
against its Avro type itself (fastavro would truncate 1.9 into an int and write
2**40 into one), and frames the binary datum as an Avro single-object encoding:
the marker C3 01, the writer schema's CRC-64-AVRO fingerprint as 8 little-endian
bytes, then the datum. Reading finds the writer schema by that fingerprint.
"""

from __future__ import annotations

import contextlib
import io
import math
import struct
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

from fastavro import schemaless_reader, schemaless_writer

from stream.attributes import (
    ATTRIBUTES,
    CART_FIELDS,
    CONTACT_FIELDS,
    CUSTOMER_AGE_FIELDS,
    DATE_PARTS,
    PRODUCT_LINE_FIELDS,
    Field,
    Kind,
)
from stream.events import AttributeEvent
from stream.schemas import (
    SINGLE_OBJECT_MARKER,
    AvroSchema,
    SchemaError,
    SchemaRegistry,
    UnknownSchemaError,
    compatibility_problems,
    named_types,
)

__all__ = [
    "SINGLE_OBJECT_MARKER",
    "AvroCodecError",
    "AvroDecodeError",
    "AvroEncodeError",
    "decode_single_object",
    "encode_single_object",
    "single_object_fingerprint",
    "to_avro_datum",
]

HEADER_BYTES = len(SINGLE_OBJECT_MARKER) + 8

INT_RANGE = (-(2**31), 2**31 - 1)
LONG_RANGE = (-(2**63), 2**63 - 1)
# timestamp-millis values a reader can turn into a datetime (years 1 to 9999).
TIMESTAMP_MS_RANGE = (-62_135_596_800_000, 253_402_300_799_999)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)

Converter = Callable[[Any], Any]


class AvroCodecError(ValueError):
    """An event could not be written as Avro, or Avro bytes could not be read.

    Attributes:
        retriable: always False: the same input fails the same way again.
    """

    retriable = False


class AvroEncodeError(AvroCodecError):
    """A canonical event does not fit its Avro schema (a bug upstream of the codec).

    Attributes:
        attribute: the attribute key of the schema, e.g. "lead".
        field: dotted path of the offending value (``payload.products[1].price``).
        reason: ``type_mismatch``, ``out_of_range``, ``missing_field`` or
            ``unexpected_field``.
    """

    def __init__(self, message: str, attribute: str, field: str, reason: str):
        super().__init__(message)
        self.attribute = attribute
        self.field = field
        self.reason = reason


class AvroDecodeError(AvroCodecError):
    """Bytes are not single-object Avro written with a schema this service knows.

    Attributes:
        reason: ``bad_marker``, ``unknown_schema``, ``incompatible_reader`` or
            ``corrupt_datum``.
    """

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


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


# --- direct binary writing -----------------------------------------------------
#
# The datum above, handed to fastavro, cost about as much again as decoding the
# record: fastavro walks the schema generically and finds each union branch by
# name. For an AttributeEvent, a plan compiled once per schema checks each value
# as the converters do and appends its Avro binary encoding at once. It only
# ever takes the happy path: on anything unexpected it gives up, and the
# checked path above (converters, then fastavro) decides, so errors stay
# exactly as they were. A test holds the two paths to the same bytes.

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


class _EventWriter:
    """Turns canonical events of one attribute into datums of one schema."""

    def __init__(self, schema: AvroSchema):
        spec = ATTRIBUTES[schema.attribute]
        payload = next(f for f in schema.parsed["fields"] if f["name"] == "payload")
        named = named_types(schema.parsed)
        # The canonical event is a record too: the envelope, then the payload.
        self.convert = _record(
            [
                ("conversationId", _string),
                ("brandId", _optional_string),
                ("consumerId", _optional_string),
                ("apiVersion", _int),
                ("authenticated", _boolean),
                ("sdeType", _constant(spec.sde_type)),
                ("attribute", _constant(spec.key)),
                ("serverTimeStamp", _timestamp),
                ("originalTimeStamp", _optional_timestamp),
                ("payload", _fields(spec.fields, payload["type"], named)),
            ]
        )
        self.binary = _BinaryWriter(schema, named)

    def datum(self, event: AttributeEvent | Mapping[str, Any]) -> dict[str, Any]:
        """The Avro datum of one canonical event, every value checked."""
        if isinstance(event, AttributeEvent):
            event = event.to_json()
        datum: dict[str, Any] = self.convert(event)
        # The schema fixes the attribute; only its sdeType is written.
        del datum["attribute"]
        return datum


# AvroSchema compares by identity, so each loaded schema gets its own writer.
_WRITERS: dict[AvroSchema, _EventWriter] = {}


def _writer_for(schema: AvroSchema) -> _EventWriter:
    writer = _WRITERS.get(schema)
    if writer is None:
        writer = _WRITERS[schema] = _EventWriter(schema)
    return writer


def to_avro_datum(
    event: AttributeEvent | Mapping[str, Any], schema: AvroSchema
) -> dict[str, Any]:
    """Build the Avro datum of a canonical event for one schema version.

    Version 2 schemas get typed values, version 1 schemas text (doubles as their
    shortest repr, ints as digits, booleans as true/false, dates with text
    parts). Union values use tuple notation, naming their branch.

    Args:
        event: an AttributeEvent or its canonical JSON form (``to_json()``).
        schema: the writer schema, which must be for the event's attribute.

    Raises:
        AvroEncodeError: a value is missing, unexpected, of the wrong type or
            outside its Avro type's range.
    """
    try:
        return _writer_for(schema).datum(event)
    except _Invalid as exc:
        raise _encode_error(exc, schema) from None


def _encode_error(exc: _Invalid, schema: AvroSchema) -> AvroEncodeError:
    path = "".join(s if s.startswith("[") else f".{s}" for s in exc.path).lstrip(".")
    return AvroEncodeError(
        f"cannot write {path or 'the event'} with {schema.full_name}:"
        f" {exc.problem}; the event does not follow the canonical form",
        attribute=schema.attribute,
        field=path,
        reason=exc.reason,
    )


def encode_single_object(
    event: AttributeEvent | Mapping[str, Any], schema: AvroSchema
) -> bytes:
    """Write one canonical event as framed single-object Avro.

    The bytes are the marker C3 01, the schema's CRC-64-AVRO fingerprint as 8
    little-endian bytes, then the binary datum (see :func:`to_avro_datum`).

    Raises:
        AvroEncodeError: the event does not fit the schema.
    """
    if type(event) is AttributeEvent:
        # Whatever the direct writer refuses (or trips on), the checked path
        # below refuses too, with the error it has always given.
        with contextlib.suppress(Exception):
            return _writer_for(schema).binary.write(event)

    datum = to_avro_datum(event, schema)

    out = io.BytesIO()
    out.write(schema.header)
    try:
        # strict: a field missing from the datum or not in the schema is an error.
        schemaless_writer(
            out, schema.parsed, datum, strict=True, strict_allow_default=False
        )
    except (ValueError, TypeError, OverflowError) as exc:
        raise AvroEncodeError(
            f"fastavro refused an event for {schema.full_name}: {exc}",
            attribute=schema.attribute,
            field="",
            reason="type_mismatch",
        ) from exc
    return out.getvalue()


def single_object_fingerprint(data: bytes) -> int:
    """The writer schema fingerprint in the header of single-object Avro bytes.

    Raises:
        AvroDecodeError: the bytes do not start with the marker C3 01 or are
            shorter than the 10-byte header.
    """
    if len(data) < HEADER_BYTES or not data.startswith(SINGLE_OBJECT_MARKER):
        raise AvroDecodeError(
            f"expected single-object Avro (marker C3 01, 8-byte fingerprint),"
            f" got {len(data)} bytes starting {bytes(data[:2]).hex(' ').upper()!r};"
            " is this topic written by engagement-stream?",
            reason="bad_marker",
        )
    return int.from_bytes(data[len(SINGLE_OBJECT_MARKER) : HEADER_BYTES], "little")


def decode_single_object(
    data: bytes, registry: SchemaRegistry, reader_version: int | None = None
) -> dict[str, Any]:
    """Read framed single-object Avro back into a canonical event.

    Args:
        data: the bytes :func:`encode_single_object` wrote.
        registry: the schemas; the writer schema is found by its fingerprint.
        reader_version: read with this version of the attribute's schema
            (Avro schema resolution); None reads with the writer schema.

    Returns:
        The canonical event (``AttributeEvent.to_json()`` form), timestamps as
        epoch milliseconds. Text written with version 1 stays text, whatever
        the reader version.

    Raises:
        AvroDecodeError: bad marker, unknown fingerprint, a reader version that
            cannot read the writer's data, or a corrupt datum.
    """
    fingerprint = single_object_fingerprint(data)
    try:
        writer = registry.by_fingerprint(fingerprint)
        reader = writer
        if reader_version is not None:
            reader = registry.get(writer.attribute, reader_version)
    except UnknownSchemaError as exc:
        raise AvroDecodeError(str(exc), reason="unknown_schema") from exc

    stream = io.BytesIO(data)
    stream.seek(HEADER_BYTES)
    datum = _read(stream, writer, reader)
    if stream.tell() != len(data):
        raise AvroDecodeError(
            f"{len(data) - stream.tell()} bytes left after the {writer.full_name}"
            " datum; the message is corrupt",
            reason="corrupt_datum",
        )
    return _canonical_event(datum, writer.attribute)


def _read(stream: io.BytesIO, writer: AvroSchema, reader: AvroSchema) -> Any:
    if reader is writer:
        reader_schema = None
    else:
        _check_readable(writer, reader)
        reader_schema = reader.parsed
    try:
        return schemaless_reader(stream, writer.parsed, reader_schema)
    except (EOFError, ValueError, IndexError, OverflowError) as exc:
        raise AvroDecodeError(
            f"corrupt {writer.full_name} datum: {exc}", reason="corrupt_datum"
        ) from exc


# (writer, reader) -> why the reader cannot read the writer's data; empty if it can.
_PROBLEMS: dict[tuple[AvroSchema, AvroSchema], list[str]] = {}


def _check_readable(writer: AvroSchema, reader: AvroSchema) -> None:
    # Checked on the schemas, not left to fastavro: it only notices a mismatch
    # when a datum happens to use it (a null value resolves against anything).
    problems = _PROBLEMS.get((writer, reader))
    if problems is None:
        problems = compatibility_problems(writer.raw, reader.raw)
        _PROBLEMS[(writer, reader)] = problems
    if problems:
        raise AvroDecodeError(
            f"{reader.full_name} cannot read data written with {writer.full_name}"
            f" ({'; '.join(problems)}); read with the writer's or a newer version",
            reason="incompatible_reader",
        )


def _canonical_event(datum: dict[str, Any], attribute: str) -> dict[str, Any]:
    original = datum["originalTimeStamp"]
    return {
        "conversationId": datum["conversationId"],
        "brandId": datum["brandId"],
        "consumerId": datum["consumerId"],
        "apiVersion": datum["apiVersion"],
        "authenticated": datum["authenticated"],
        "sdeType": datum["sdeType"],
        "attribute": attribute,
        "serverTimeStamp": _epoch_ms(datum["serverTimeStamp"]),
        "originalTimeStamp": None if original is None else _epoch_ms(original),
        "payload": datum["payload"],
    }


def _epoch_ms(instant: datetime | int) -> int:
    if isinstance(instant, int):
        return instant
    # Integer arithmetic on an aware datetime: exact, and blind to the host TZ.
    return (instant - _EPOCH) // _ONE_MS
