"""Avro codec: canonical attribute events to framed single-object Avro and back.

Writing builds an Avro datum from the canonical event with a converter made once
per schema (typed values for version 2, text for version 1), checks every value
against its Avro type itself (fastavro would truncate 1.9 into an int and write
2**40 into one), and frames the binary datum as an Avro single-object encoding:
the marker C3 01, the writer schema's CRC-64-AVRO fingerprint as 8 little-endian
bytes, then the datum. Reading finds the writer schema by that fingerprint.

The converters live in stream/avro_convert.py and the direct binary writer, the
fast path for AttributeEvents, in stream/avro_binary.py. The underscored names
the three modules share stay underscored: they are private to the codec.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from stream.attributes import ATTRIBUTES
from stream.avro_binary import _BinaryWriter
from stream.avro_convert import (
    _boolean,
    _constant,
    _fields,
    _int,
    _Invalid,
    _optional_string,
    _optional_timestamp,
    _record,
    _string,
    _timestamp,
)
from stream.events import AttributeEvent
from stream.schemas import (
    SINGLE_OBJECT_MARKER,
    AvroSchema,
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

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


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
