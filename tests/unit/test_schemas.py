"""The schema files, the registry, pins and CRC-64-AVRO fingerprints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastavro.schema import fingerprint as fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from stream.attributes import (
    ATTRIBUTES,
    CART_FIELDS,
    CONTACT_FIELDS,
    CUSTOMER_AGE_FIELDS,
    PRODUCT_LINE_FIELDS,
    Kind,
)
from stream.schemas import (
    DEFAULT_SCHEMA_DIR,
    SCHEMA_DIR_ENV,
    SchemaError,
    SchemaRegistry,
    UnknownSchemaError,
    crc64_avro,
    parsing_canonical_form,
    schema_fingerprint,
)

REGISTRY = SchemaRegistry.load()
VERSIONS = (1, 2)
KEYS = [(attribute, version) for attribute in ATTRIBUTES for version in VERSIONS]
TIMESTAMP = {"type": "long", "logicalType": "timestamp-millis"}

TYPED = {Kind.DOUBLE: "double", Kind.INT: "int", Kind.COUNT: "int", Kind.LONG: "long"}
TYPED[Kind.BOOLEAN] = "boolean"
RECORDS = {
    Kind.PRODUCTS: ("ProductLine", PRODUCT_LINE_FIELDS),
    Kind.CONTACTS: ("Contact", CONTACT_FIELDS),
    Kind.CART: ("Cart", CART_FIELDS),
    Kind.CUSTOMER_AGE: ("CustomerAge", CUSTOMER_AGE_FIELDS),
}


# --- the files mirror stream/attributes.py ----------------------------------


def named(schema: dict[str, Any]) -> dict[str, Any]:
    """Full name -> definition, from fastavro's parsed form (names are full)."""
    found: dict[str, Any] = {}

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for branch in node:
                walk(branch)
        elif isinstance(node, dict):
            if node.get("type") == "record":
                found[node["name"]] = node
                for fld in node["fields"]:
                    walk(fld["type"])
            elif node.get("type") == "array":
                walk(node["items"])

    walk(schema)
    return found


def deref(avro_type: Any, types: dict[str, Any]) -> Any:
    return types.get(avro_type, avro_type) if isinstance(avro_type, str) else avro_type


def assert_field_fits(
    kind: Kind, avro_type: Any, version: int, types: dict[str, Any]
) -> None:
    ns = f"engagementstream.v{version}"
    if kind is Kind.STRING:
        assert avro_type == ["null", "string"]
    elif kind in TYPED:
        typed = ["null", TYPED[kind], "string"]
        assert avro_type == (typed if version == 2 else ["null", "string"])
    elif kind is Kind.KEYWORDS:
        assert avro_type == {"type": "array", "items": "string"}
    elif kind is Kind.DATE:
        branches = [deref(b, types) for b in avro_type]
        names = [b if isinstance(b, str) else b["name"] for b in branches]
        want = ["Date", "TextDate"] if version == 2 else ["TextDate"]
        assert names == ["null", *(f"{ns}.{n}" for n in want)]
        for branch in branches[1:]:
            part = "int" if branch["name"].endswith(".Date") else "string"
            assert [(f["name"], f["type"]) for f in branch["fields"]] == [
                (p, part) for p in ("year", "month", "day")
            ]
    else:
        name, fields = RECORDS[kind]
        if kind in (Kind.PRODUCTS, Kind.CONTACTS):
            assert avro_type["type"] == "array"
            record = deref(avro_type["items"], types)
        else:
            assert avro_type[0] == "null" and len(avro_type) == 2
            record = deref(avro_type[1], types)
        assert record["name"] == f"{ns}.{name}"
        assert_record_mirrors(record, fields, version, types)


def assert_record_mirrors(
    record: dict[str, Any], fields: Any, version: int, types: dict[str, Any]
) -> None:
    assert [f["name"] for f in record["fields"]] == [name for name, _ in fields]
    for avro_field, (_, kind) in zip(record["fields"], fields, strict=True):
        assert_field_fits(kind, avro_field["type"], version, types)


@pytest.mark.parametrize(("attribute", "version"), KEYS)
def test_schema_mirrors_the_attribute_table(attribute: str, version: int) -> None:
    schema = REGISTRY.get(attribute, version)
    spec = ATTRIBUTES[attribute]
    parsed = schema.parsed
    types = named(parsed)

    assert parsed["name"] == f"engagementstream.v{version}.{spec.record_name}"
    envelope = [(f["name"], f["type"]) for f in parsed["fields"][:-1]]
    assert envelope == [
        ("conversationId", "string"),
        ("brandId", ["null", "string"]),
        ("consumerId", ["null", "string"]),
        ("apiVersion", "int"),
        ("authenticated", "boolean"),
        ("sdeType", "string"),
        ("serverTimeStamp", TIMESTAMP),
        ("originalTimeStamp", ["null", TIMESTAMP]),
    ]
    payload = parsed["fields"][-1]
    assert payload["name"] == "payload"
    assert payload["type"]["name"] == f"{parsed['name']}Payload"
    assert_record_mirrors(payload["type"], spec.fields, version, types)


@pytest.mark.parametrize(("attribute", "version"), KEYS)
def test_every_record_and_field_is_documented(attribute: str, version: int) -> None:
    records = named(REGISTRY.get(attribute, version).raw)
    assert records
    for record in records.values():
        assert record.get("doc"), record["name"]
        for fld in record["fields"]:
            assert fld.get("doc"), f"{record['name']}.{fld['name']}"


@pytest.mark.parametrize(("attribute", "version"), KEYS)
def test_nullable_fields_default_to_null_and_lists_to_empty(
    attribute: str, version: int
) -> None:
    records = named(REGISTRY.get(attribute, version).raw)
    for record in records.values():
        for fld in record["fields"]:
            avro_type = fld["type"]
            if isinstance(avro_type, list):
                assert fld["default"] is None
            elif isinstance(avro_type, dict) and avro_type["type"] == "array":
                assert fld["default"] == []


# --- registry ----------------------------------------------------------------


def test_registry_holds_both_versions_of_all_ten_attributes() -> None:
    assert len(list(REGISTRY)) == 20
    assert REGISTRY.attributes() == tuple(ATTRIBUTES)
    for attribute in ATTRIBUTES:
        assert REGISTRY.versions(attribute) == (1, 2)
        assert REGISTRY.newest(attribute) is REGISTRY.get(attribute, 2)
        assert REGISTRY.get(attribute, 1).path.parent.name == "v1"


def test_schemas_are_parsed_once_at_load() -> None:
    schema = REGISTRY.get("lead", 2)
    assert schema.parsed["__fastavro_parsed"] is True
    assert REGISTRY.get("lead", 2) is schema


def test_published_schema_is_the_newest_unless_pinned() -> None:
    pins = {"lead": 1, "purchase": 2}
    assert REGISTRY.published("lead") is REGISTRY.get("lead", 2)
    assert REGISTRY.published("lead", pins) is REGISTRY.get("lead", 1)
    assert REGISTRY.published("purchase", pins) is REGISTRY.get("purchase", 2)
    assert REGISTRY.published("cartStatus", pins) is REGISTRY.get("cartStatus", 2)

    published = REGISTRY.published_schemas(pins)
    assert list(published) == list(ATTRIBUTES)
    assert published["lead"].version == 1
    assert {s.version for a, s in published.items() if a != "lead"} == {2}


@pytest.mark.parametrize(
    ("pins", "message"),
    [
        ({"leads": 1}, "unknown attribute 'leads'"),
        ({"LEAD": 2}, "unknown attribute 'LEAD'"),
        ({"lead": 3}, "no schema version 3 for lead; available: 1, 2"),
        ({"lead": 0}, "no schema version 0 for lead"),
    ],
)
def test_bad_pins_are_clear_errors(pins: dict[str, int], message: str) -> None:
    with pytest.raises(UnknownSchemaError, match=message):
        REGISTRY.published_schemas(pins)


def test_lookups_of_unknown_things_fail_clearly() -> None:
    with pytest.raises(UnknownSchemaError, match="unknown attribute 'nope'"):
        REGISTRY.newest("nope")
    with pytest.raises(UnknownSchemaError, match="no schema version 9 for lead"):
        REGISTRY.get("lead", 9)
    with pytest.raises(UnknownSchemaError, match="no schema has fingerprint"):
        REGISTRY.by_fingerprint(0)


def test_default_dir_is_the_repository_schemas_folder() -> None:
    assert Path(__file__).resolve().parents[2] / "schemas" == DEFAULT_SCHEMA_DIR


def test_schema_dir_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(DEFAULT_SCHEMA_DIR, tmp_path / "schemas")
    (tmp_path / "schemas" / "v1" / "lead.avsc").unlink()
    monkeypatch.setenv(SCHEMA_DIR_ENV, str(tmp_path / "schemas"))

    registry = SchemaRegistry.load()

    assert registry.versions("lead") == (2,)
    assert registry.get("lead", 2).path.parent.parent == tmp_path / "schemas"


def test_a_missing_schema_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="does not exist; set ES_SCHEMA_DIR"):
        SchemaRegistry.load(tmp_path / "nowhere")


def copy_schemas(tmp_path: Path) -> Path:
    root = tmp_path / "schemas"
    shutil.copytree(DEFAULT_SCHEMA_DIR, root)
    return root


def test_a_misnamed_record_is_refused(tmp_path: Path) -> None:
    root = copy_schemas(tmp_path)
    path = root / "v2" / "lead.avsc"
    raw = json.loads(path.read_text())
    raw["name"] = "Leads"
    path.write_text(json.dumps(raw))

    with pytest.raises(SchemaError, match=r"expected engagementstream\.v2\.Lead"):
        SchemaRegistry.load(root)


@pytest.mark.parametrize(
    ("relative", "message"),
    [
        ("v2/leads.avsc", "'leads' is not an attribute key"),
        ("latest/lead.avsc", "'latest' is not a version"),
    ],
)
def test_misplaced_files_are_refused(
    tmp_path: Path, relative: str, message: str
) -> None:
    root = copy_schemas(tmp_path)
    (root / relative).parent.mkdir(exist_ok=True)
    shutil.copy(root / "v2" / "lead.avsc", root / relative)

    with pytest.raises(SchemaError, match=message):
        SchemaRegistry.load(root)


def test_an_attribute_without_any_schema_is_refused(tmp_path: Path) -> None:
    root = copy_schemas(tmp_path)
    for version in VERSIONS:
        (root / f"v{version}" / "lead.avsc").unlink()

    with pytest.raises(SchemaError, match="no schema for lead"):
        SchemaRegistry.load(root)


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "record", "name": "Lead"}',
        '{"type": "record", "name": "Lead", "fields": [{"name": "x", "type": "Nope"}]}',
        '{"type": "record", "name": "Lead", "fields": [}',
    ],
)
def test_invalid_avro_is_refused(tmp_path: Path, text: str) -> None:
    root = copy_schemas(tmp_path)
    (root / "v2" / "lead.avsc").write_text(text)

    with pytest.raises(SchemaError, match="not a valid Avro schema"):
        SchemaRegistry.load(root)


# --- fingerprints ------------------------------------------------------------

# Test vectors of the Avro specification's test data (schema-tests.txt), given
# there as signed 64-bit values.
SPEC_VECTORS = [
    ('"null"', 7195948357588979594),
    ('"boolean"', -6970731678124411036),
    ('"int"', 8247732601305521295),
    ('"long"', -3434872931120570953),
    ('"float"', 5583340709985441680),
    ('"double"', -8181574048448539266),
    ('"bytes"', 5746618253357095269),
    ('"string"', -8142146995180207161),
    ('{"name":"foo","type":"fixed","size":15}', 1756455273707447556),
    (
        '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}',
        7843277075252814651,
    ),
]


@pytest.mark.parametrize(("canonical", "signed"), SPEC_VECTORS)
def test_crc64_matches_the_specification_vectors(canonical: str, signed: int) -> None:
    assert crc64_avro(canonical.encode()) == signed % 2**64
    assert schema_fingerprint(json.loads(canonical)) == signed % 2**64


@pytest.mark.parametrize(
    ("schema", "canonical"),
    [
        ({"type": "int"}, '"int"'),
        ({"type": "long", "logicalType": "timestamp-millis"}, '"long"'),
        (
            {
                "type": "record",
                "name": "R",
                "namespace": "a.b",
                "doc": "dropped",
                "aliases": ["Q"],
                "fields": [
                    {"name": "x", "type": "int", "default": 1, "doc": "dropped"},
                    {
                        "name": "y",
                        "type": {"type": "enum", "name": "E", "symbols": ["A"]},
                    },
                    {"name": "z", "type": ["null", "E", "c.F"]},
                    {"name": "m", "type": {"type": "map", "values": "R"}},
                    {"name": "é", "type": {"type": "fixed", "name": "F", "size": 2}},
                ],
            },
            '{"name":"a.b.R","type":"record","fields":[{"name":"x","type":"int"},'
            '{"name":"y","type":{"name":"a.b.E","type":"enum","symbols":["A"]}},'
            '{"name":"z","type":["null","a.b.E","c.F"]},'
            '{"name":"m","type":{"type":"map","values":"a.b.R"}},'
            '{"name":"é","type":{"name":"a.b.F","type":"fixed","size":2}}]}',
        ),
    ],
)
def test_parsing_canonical_form(schema: Any, canonical: str) -> None:
    assert parsing_canonical_form(schema) == canonical


@pytest.mark.parametrize(("attribute", "version"), KEYS)
def test_fingerprints_agree_with_fastavro(attribute: str, version: int) -> None:
    schema = REGISTRY.get(attribute, version)

    assert schema.canonical_form == to_parsing_canonical_form(schema.raw)
    # fastavro writes the fingerprint as hex of its little-endian bytes.
    expected_hex = fastavro_fingerprint(schema.canonical_form, "CRC-64-AVRO")
    assert schema.fingerprint.to_bytes(8, "little").hex() == expected_hex
    assert schema.header == b"\xc3\x01" + bytes.fromhex(expected_hex)


def test_fingerprints_are_stable() -> None:
    # A change here means the writer schema changed: readers need the new file.
    assert REGISTRY.get("lead", 2).fingerprint == 0xDF2C0E738A7AFC15
    assert REGISTRY.get("lead", 1).fingerprint == 0x8B04C26056D25742
    assert REGISTRY.get("customerInfo", 2).header.hex() == "c3015cd212e4be277ed5"


def test_docs_do_not_change_fingerprints() -> None:
    raw = json.loads(REGISTRY.get("lead", 2).path.read_text())
    raw["doc"] = "something else"
    raw["fields"][0]["doc"] = "and else"

    assert schema_fingerprint(raw) == REGISTRY.get("lead", 2).fingerprint


def test_fingerprints_are_unique() -> None:
    fingerprints = [schema.fingerprint for schema in REGISTRY]
    assert len(set(fingerprints)) == len(fingerprints)
    for schema in REGISTRY:
        assert REGISTRY.by_fingerprint(schema.fingerprint) is schema
