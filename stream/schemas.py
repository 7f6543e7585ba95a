"""Avro schemas: load every version once, fingerprint them, pick the published ones.

The schema files live in ``schemas/v<version>/<attribute>.avsc`` (the repository's
``schemas`` directory unless ``ES_SCHEMA_DIR`` names another). Loading parses each
file once with fastavro, computes its CRC-64-AVRO fingerprint over the Parsing
Canonical Form (Avro specification, "Schema Fingerprints"), and refuses a schema
set in which a newer version cannot read data written with an older one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastavro import parse_schema

from stream.attributes import ATTRIBUTES

SCHEMA_DIR_ENV = "ES_SCHEMA_DIR"
DEFAULT_SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
NAMESPACE_PREFIX = "engagementstream.v"

# The two marker bytes that open an Avro single-object encoding.
SINGLE_OBJECT_MARKER = b"\xc3\x01"

PRIMITIVES = frozenset(
    ("null", "boolean", "int", "long", "float", "double", "bytes", "string")
)
NAMED_KINDS = frozenset(("record", "error", "enum", "fixed"))

# CRC-64-AVRO: the Rabin fingerprint of the Avro specification.
_CRC64_EMPTY = 0xC15D213AA4D7A795


class SchemaError(Exception):
    """The schema files cannot be used: unreadable, misnamed or incompatible."""


class UnknownSchemaError(SchemaError, LookupError):
    """No schema exists for the attribute, version or fingerprint asked for."""


@dataclass(frozen=True, eq=False)
class AvroSchema:
    """One parsed schema version of one attribute.

    Attributes:
        attribute: the attribute key, e.g. "lead".
        version: the schema version, e.g. 2.
        full_name: the top-level record's full name, "engagementstream.v2.Lead".
        path: the file the schema was read from.
        raw: the schema as written in the file (parsed JSON).
        parsed: the schema as fastavro's ``parse_schema`` returned it.
        canonical_form: the Parsing Canonical Form, the text that is fingerprinted.
        fingerprint: CRC-64-AVRO of the canonical form, an unsigned 64-bit int.
        header: the single-object header: marker bytes, then the fingerprint
            as 8 little-endian bytes.
    """

    attribute: str
    version: int
    full_name: str
    path: Path
    raw: dict[str, Any] = field(repr=False)
    parsed: dict[str, Any] = field(repr=False)
    canonical_form: str = field(repr=False)
    fingerprint: int
    header: bytes = field(repr=False)


def crc64_avro(data: bytes) -> int:
    """Return the CRC-64-AVRO (Rabin) fingerprint of ``data`` as an unsigned int."""
    fp = _CRC64_EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _CRC64_TABLE[(fp ^ byte) & 0xFF]
    return fp


def _crc64_table() -> tuple[int, ...]:
    table = []
    for index in range(256):
        fp = index
        for _ in range(8):
            fp = (fp >> 1) ^ (_CRC64_EMPTY & -(fp & 1))
        table.append(fp)
    return tuple(table)


_CRC64_TABLE = _crc64_table()


def full_name(name: str, namespace: str | None) -> str:
    """Return the full name of a named type (a dotted name is already full)."""
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def parsing_canonical_form(schema: Any) -> str:
    """Return the Parsing Canonical Form of a schema given as parsed JSON.

    Full names everywhere, only the attributes that matter for reading
    (name, type, fields, symbols, items, values, size) in that order, each
    named type written out once and referenced by full name afterwards, no
    whitespace.
    """
    return _canonical(schema, None, set())


def _canonical(schema: Any, namespace: str | None, seen: set[str]) -> str:
    if isinstance(schema, list):
        return "[" + ",".join(_canonical(s, namespace, seen) for s in schema) + "]"

    if isinstance(schema, str):
        name = schema if schema in PRIMITIVES else full_name(schema, namespace)
        return _json(name)

    kind = schema["type"]
    if not isinstance(kind, str) or kind in PRIMITIVES:
        # {"type": "long", "logicalType": ...} reads as plain "long".
        return _canonical(kind, namespace, seen)

    if kind in ("array", "map"):
        key = "items" if kind == "array" else "values"
        inner = _canonical(schema[key], namespace, seen)
        return f'{{"type":"{kind}","{key}":{inner}}}'
    if kind not in NAMED_KINDS:
        return _canonical(kind, namespace, seen)

    return _canonical_named(schema, namespace, seen)


def _canonical_named(
    schema: Mapping[str, Any], namespace: str | None, seen: set[str]
) -> str:
    name = full_name(schema["name"], schema.get("namespace", namespace))
    if name in seen:
        return _json(name)
    seen.add(name)

    kind = schema["type"]
    parts = [f'"name":{_json(name)}', f'"type":{_json(kind)}']
    inner = name.rpartition(".")[0] or None
    if kind in ("record", "error"):
        fields = [
            f'{{"name":{_json(f["name"])},"type":{_canonical(f["type"], inner, seen)}}}'
            for f in schema["fields"]
        ]
        parts.append('"fields":[' + ",".join(fields) + "]")
    elif kind == "enum":
        parts.append(
            '"symbols":[' + ",".join(_json(s) for s in schema["symbols"]) + "]"
        )
    else:
        parts.append(f'"size":{int(schema["size"])}')
    return "{" + ",".join(parts) + "}"


def _json(text: str) -> str:
    # The canonical form writes strings with their UTF-8 characters, not \u escapes.
    return json.dumps(text, ensure_ascii=False)


def schema_fingerprint(schema: Any) -> int:
    """Return the CRC-64-AVRO fingerprint of a schema given as parsed JSON."""
    return crc64_avro(parsing_canonical_form(schema).encode("utf-8"))


def compatibility_problems(writer: Any, reader: Any) -> list[str]:
    """List why data written with ``writer`` could not be read with ``reader``.

    Follows the schema resolution rules of the Avro specification: records match
    by unqualified name or by a reader alias, reader fields the writer lacks need
    a default, primitives may be promoted (int to long, float or double; long to
    float or double; float to double; string and bytes either way), every branch
    of a writer union must find a reader branch, and the first matching reader
    branch is the one resolved against.

    Args:
        writer: the writer schema as parsed JSON.
        reader: the reader schema as parsed JSON.

    Returns:
        One sentence per problem, each starting with the path of the value; an
        empty list when every datum of the writer schema can be read.
    """
    checker = _Checker(named_types(writer), named_types(reader))
    checker.check((writer, None), (reader, None), _label((writer, None)))
    return checker.problems


_CONTAINERS = NAMED_KINDS | {"array", "map"}

# A schema node with the namespace its names are resolved in.
_Node = tuple[Any, str | None]

_PROMOTIONS: dict[str, tuple[str, ...]] = {
    "int": ("long", "float", "double"),
    "long": ("float", "double"),
    "float": ("double",),
    "string": ("bytes",),
    "bytes": ("string",),
}


def named_types(schema: Any, namespace: str | None = None) -> dict[str, Any]:
    """Map the full name of every named type defined in a schema to its definition."""
    named: dict[str, Any] = {}
    if isinstance(schema, list):
        for branch in schema:
            named.update(named_types(branch, namespace))
    elif isinstance(schema, dict):
        kind = schema["type"]
        if not isinstance(kind, str):
            named.update(named_types(kind, namespace))
        elif kind in NAMED_KINDS:
            name = full_name(schema["name"], schema.get("namespace", namespace))
            named[name] = schema
            for fld in schema.get("fields", ()):
                named.update(named_types(fld["type"], _namespace_of(name)))
        elif kind in ("array", "map"):
            inner = schema["items" if kind == "array" else "values"]
            named.update(named_types(inner, namespace))
    return named


def _namespace_of(name: str) -> str | None:
    return name.rpartition(".")[0] or None


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, str):
        return schema
    kind = schema["type"]
    if not isinstance(kind, str):
        return _kind(kind)
    return "record" if kind == "error" else kind


def _label(node: _Node) -> str:
    schema, namespace = node
    if _kind(schema) in NAMED_KINDS:
        return full_name(schema["name"], schema.get("namespace", namespace))
    return _kind(schema)


class _Checker:
    """Walks a writer and a reader schema side by side, collecting problems."""

    def __init__(self, writer_named: dict[str, Any], reader_named: dict[str, Any]):
        self.named = (writer_named, reader_named)
        self.problems: list[str] = []
        # (writer name, reader name) pairs already checked; stops recursive types.
        self.seen: set[tuple[str, str]] = set()

    def check(self, w: _Node, r: _Node, path: str) -> None:
        """Check that a writer type resolves against a reader type."""
        w, r = _resolve(w, self.named[0]), _resolve(r, self.named[1])
        if _kind(w[0]) == "union":
            for branch in w[0]:
                self.check((branch, w[1]), r, path)
        elif _kind(r[0]) == "union":
            branches = [_resolve((b, r[1]), self.named[1]) for b in r[0]]
            match = next((b for b in branches if _matches(w, b)), None)
            if match is None:
                self.fail(path, f"the reader's union has no branch for {_label(w)}")
            else:
                self.check(w, match, path)
        elif not _matches(w, r):
            self.fail(path, f"the writer's {_label(w)} cannot be read as {_label(r)}")
        else:
            self.check_inside(w, r, path)

    def check_inside(self, w: _Node, r: _Node, path: str) -> None:
        """Check what sits inside two matching types: fields, symbols, items."""
        kind, (w_schema, w_ns), (r_schema, r_ns) = _kind(w[0]), w, r
        if kind == "array":
            self.check(
                (w_schema["items"], w_ns), (r_schema["items"], r_ns), path + "[]"
            )
        elif kind == "map":
            self.check(
                (w_schema["values"], w_ns), (r_schema["values"], r_ns), path + "{}"
            )
        elif kind == "enum":
            missing = set(w_schema["symbols"]) - set(r_schema["symbols"])
            if missing and "default" not in r_schema:
                self.fail(
                    path, f"the reader's enum lacks {sorted(missing)}, no default"
                )
        elif kind == "record" and (_label(w), _label(r)) not in self.seen:
            self.seen.add((_label(w), _label(r)))
            self.check_fields(w, r, path)

    def check_fields(self, w: _Node, r: _Node, path: str) -> None:
        """Check a reader record's fields against the writer record's."""
        w_ns, r_ns = _namespace_of(_label(w)), _namespace_of(_label(r))
        by_name = {fld["name"]: fld for fld in w[0]["fields"]}
        for r_field in r[0]["fields"]:
            names = (r_field["name"], *r_field.get("aliases", ()))
            w_field = next((by_name[n] for n in names if n in by_name), None)
            field_path = f"{path}.{r_field['name']}"
            if w_field is not None:
                self.check((w_field["type"], w_ns), (r_field["type"], r_ns), field_path)
            elif "default" not in r_field:
                self.fail(field_path, "new in the reader, which gives it no default")

    def fail(self, path: str, problem: str) -> None:
        """Record one problem at a path."""
        self.problems.append(f"{path}: {problem}")


def _resolve(node: _Node, named: dict[str, Any]) -> _Node:
    """Follow a name reference or a logical-type wrapper to the type itself."""
    schema, namespace = node
    if isinstance(schema, str) and schema not in PRIMITIVES:
        name = full_name(schema, namespace)
        return named[name], _namespace_of(name)
    if isinstance(schema, dict) and (
        not isinstance(schema["type"], str) or schema["type"] not in _CONTAINERS
    ):
        return _resolve((schema["type"], namespace), named)
    return node


def _matches(w: _Node, r: _Node) -> bool:
    """Whether two non-union types match at the top (kinds, names, sizes)."""
    w_kind, r_kind = _kind(w[0]), _kind(r[0])
    if w_kind in PRIMITIVES:
        return r_kind == w_kind or r_kind in _PROMOTIONS.get(w_kind, ())
    if w_kind != r_kind or w_kind not in NAMED_KINDS:
        return w_kind == r_kind

    w_name, r_name = _label(w), _label(r)
    aliases = {full_name(a, _namespace_of(r_name)) for a in r[0].get("aliases", ())}
    if w_name.rpartition(".")[2] != r_name.rpartition(".")[2] and w_name not in aliases:
        return False
    return w_kind != "fixed" or w[0]["size"] == r[0]["size"]


class SchemaRegistry:
    """Every schema version of every attribute, parsed once and looked up by key.

    Build it with :meth:`load` at start-up. Lookups are by (attribute, version)
    for writing and by fingerprint for reading single-object encoded data.
    """

    def __init__(self, schemas: Iterable[AvroSchema]):
        self._by_key: dict[tuple[str, int], AvroSchema] = {}
        self._by_fingerprint: dict[int, AvroSchema] = {}
        for schema in schemas:
            self._add(schema)
        self._check_coverage()
        self._check_evolution()

    @classmethod
    def load(cls, schema_dir: str | Path | None = None) -> SchemaRegistry:
        """Read every ``v<version>/<attribute>.avsc`` file under ``schema_dir``.

        Args:
            schema_dir: the directory holding the version folders; defaults to
                ``$ES_SCHEMA_DIR``, else the repository's ``schemas`` directory.

        Raises:
            SchemaError: a file is unreadable, misplaced or misnamed, an
                attribute has no schema, or a newer version cannot read data
                written with an older one.
        """
        root = Path(schema_dir or os.environ.get(SCHEMA_DIR_ENV) or DEFAULT_SCHEMA_DIR)
        if not root.is_dir():
            raise SchemaError(
                f"schema directory {root} does not exist; set {SCHEMA_DIR_ENV}"
                " to the directory holding the v1, v2, ... folders"
            )
        return cls(_read_schema(path) for path in sorted(root.glob("*/*.avsc")))

    def __iter__(self) -> Iterator[AvroSchema]:
        return iter(self._by_key.values())

    def attributes(self) -> tuple[str, ...]:
        """The attribute keys, in the order of the attribute table."""
        return tuple(ATTRIBUTES)

    def versions(self, attribute: str) -> tuple[int, ...]:
        """The schema versions available for an attribute, oldest first."""
        found = sorted(v for a, v in self._by_key if a == attribute)
        if not found:
            raise UnknownSchemaError(
                f"unknown attribute {attribute!r};"
                f" expected one of {', '.join(ATTRIBUTES)}"
            )
        return tuple(found)

    def get(self, attribute: str, version: int) -> AvroSchema:
        """The schema of one attribute at one version."""
        schema = self._by_key.get((attribute, version))
        if schema is None:
            available = ", ".join(map(str, self.versions(attribute)))
            raise UnknownSchemaError(
                f"no schema version {version!r} for {attribute}; available: {available}"
            )
        return schema

    def newest(self, attribute: str) -> AvroSchema:
        """The newest schema version of an attribute."""
        return self.get(attribute, self.versions(attribute)[-1])

    def by_fingerprint(self, fingerprint: int) -> AvroSchema:
        """The schema whose CRC-64-AVRO fingerprint is ``fingerprint``."""
        schema = self._by_fingerprint.get(fingerprint)
        if schema is None:
            raise UnknownSchemaError(
                f"no schema has fingerprint {fingerprint:#018x}; the data was written"
                " with a schema this service does not know (is ES_SCHEMA_DIR current?)"
            )
        return schema

    def published(
        self, attribute: str, pins: Mapping[str, int] | None = None
    ) -> AvroSchema:
        """The schema an attribute's topic is written with: its pin, else the newest.

        Args:
            attribute: the attribute key, e.g. "lead".
            pins: operator pins, attribute key -> schema version.
        """
        if pins and attribute in pins:
            return self.get(attribute, pins[attribute])
        return self.newest(attribute)

    def published_schemas(
        self, pins: Mapping[str, int] | None = None
    ) -> dict[str, AvroSchema]:
        """The published schema of every attribute, checking every pin.

        Raises:
            UnknownSchemaError: a pin names an unknown attribute or version.
        """
        for attribute in pins or {}:
            self.versions(attribute)
        return {attribute: self.published(attribute, pins) for attribute in ATTRIBUTES}

    def _add(self, schema: AvroSchema) -> None:
        key = (schema.attribute, schema.version)
        if key in self._by_key:
            raise SchemaError(
                f"two schemas for {schema.attribute} version {schema.version}"
            )
        clash = self._by_fingerprint.get(schema.fingerprint)
        if clash is not None:
            raise SchemaError(
                f"{schema.path} and {clash.path} have the same fingerprint;"
                " single-object decoding could not tell them apart"
            )
        self._by_key[key] = schema
        self._by_fingerprint[schema.fingerprint] = schema

    def _check_coverage(self) -> None:
        missing = [a for a in ATTRIBUTES if not any(k[0] == a for k in self._by_key)]
        if missing:
            raise SchemaError(f"no schema for {', '.join(missing)}")

    def _check_evolution(self) -> None:
        # Every version must read what every older version of its attribute wrote.
        for attribute in ATTRIBUTES:
            versions = self.versions(attribute)
            for older_index, older in enumerate(versions):
                for newer in versions[older_index + 1 :]:
                    self._check_pair(
                        self.get(attribute, older), self.get(attribute, newer)
                    )

    @staticmethod
    def _check_pair(writer: AvroSchema, reader: AvroSchema) -> None:
        problems = compatibility_problems(writer.raw, reader.raw)
        if problems:
            raise SchemaError(
                f"{reader.path} cannot read data written with {writer.path}: "
                + "; ".join(problems)
            )


def _read_schema(path: Path) -> AvroSchema:
    version = _version_of(path)
    attribute = path.stem
    spec = ATTRIBUTES.get(attribute)
    if spec is None:
        raise SchemaError(
            f"{path}: {attribute!r} is not an attribute key; expected one of"
            f" {', '.join(ATTRIBUTES)}"
        )

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        parsed: Any = parse_schema(raw)
        canonical = parsing_canonical_form(raw)
        name = full_name(raw["name"], raw.get("namespace"))
    except (OSError, ValueError, LookupError, TypeError) as exc:
        raise SchemaError(f"{path}: not a valid Avro schema: {exc!r}") from exc

    expected = f"{NAMESPACE_PREFIX}{version}.{spec.record_name}"
    if name != expected:
        raise SchemaError(f"{path}: the record is named {name}; expected {expected}")

    fingerprint = crc64_avro(canonical.encode("utf-8"))
    return AvroSchema(
        attribute=attribute,
        version=version,
        full_name=name,
        path=path,
        raw=raw,
        parsed=parsed,
        canonical_form=canonical,
        fingerprint=fingerprint,
        header=SINGLE_OBJECT_MARKER + fingerprint.to_bytes(8, "little"),
    )


def _version_of(path: Path) -> int:
    folder = path.parent.name
    if not (folder.startswith("v") and folder[1:].isdigit()):
        raise SchemaError(
            f"{path}: the folder {folder!r} is not a version (v1, v2, ...)"
        )
    return int(folder[1:])
