"""Schema evolution: the newest version reads every older one, and bad changes fail."""

from __future__ import annotations

import copy
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError

from stream.attributes import ATTRIBUTES
from stream.avro_codec import to_avro_datum
from stream.schemas import (
    DEFAULT_SCHEMA_DIR,
    SchemaError,
    SchemaRegistry,
    compatibility_problems,
)
from tests.unit.conftest import edge_expected, sample_expected

REGISTRY = SchemaRegistry.load()


def corpus_events() -> list[dict[str, Any]]:
    events = [e for v in (1, 2) for line in sample_expected(v) for e in line["emit"]]
    events += [e for case in edge_expected().values() for e in case.get("emit", [])]
    return events


EVENTS = corpus_events()


def older_versions() -> list[tuple[str, int]]:
    return [
        (attribute, version)
        for attribute in ATTRIBUTES
        for version in REGISTRY.versions(attribute)[:-1]
    ]


@pytest.mark.parametrize(("attribute", "version"), older_versions())
def test_newest_schema_reads_every_older_version(attribute: str, version: int) -> None:
    writer = REGISTRY.get(attribute, version)
    reader = REGISTRY.newest(attribute)

    assert compatibility_problems(writer.raw, reader.raw) == []


def test_every_attribute_has_corpus_events() -> None:
    assert {e["attribute"] for e in EVENTS} == set(ATTRIBUTES)


@pytest.mark.parametrize("attribute", list(ATTRIBUTES))
def test_data_written_with_v1_resolves_with_v2_as_reader(attribute: str) -> None:
    events = [e for e in EVENTS if e["attribute"] == attribute]
    writer, reader = REGISTRY.get(attribute, 1), REGISTRY.newest(attribute)

    for event in events:
        data = io.BytesIO()
        schemaless_writer(data, writer.parsed, to_avro_datum(event, writer))
        written = data.getvalue()

        as_written = schemaless_reader(io.BytesIO(written), writer.parsed)
        resolved = schemaless_reader(io.BytesIO(written), writer.parsed, reader.parsed)

        # The text of version 1 lands in the string branches, value for value.
        assert resolved == as_written


def test_v1_cannot_read_v2_data_upgrade_readers_first() -> None:
    problems = compatibility_problems(
        REGISTRY.get("lead", 2).raw, REGISTRY.get("lead", 1).raw
    )

    assert problems == [
        "engagementstream.v2.Lead.payload.value:"
        " the reader's union has no branch for double"
    ]


def with_new_payload_field(raw: dict[str, Any], new_field: dict[str, Any]) -> Any:
    changed = copy.deepcopy(raw)
    payload = next(f for f in changed["fields"] if f["name"] == "payload")
    payload["type"]["fields"].append(new_field)
    return changed


NEW_WITHOUT_DEFAULT = {"name": "score", "type": ["null", "double"], "doc": "New."}
NEW_WITH_DEFAULT = {**NEW_WITHOUT_DEFAULT, "default": None}


def test_a_new_field_without_default_is_caught_by_the_checker() -> None:
    v1, v2 = REGISTRY.get("lead", 1).raw, REGISTRY.get("lead", 2).raw
    changed = with_new_payload_field(v2, NEW_WITHOUT_DEFAULT)

    # Paths start at the writer's record.
    assert compatibility_problems(v1, changed) == [
        "engagementstream.v1.Lead.payload.score:"
        " new in the reader, which gives it no default"
    ]
    assert compatibility_problems(v2, changed) != []
    assert (
        compatibility_problems(v1, with_new_payload_field(v2, NEW_WITH_DEFAULT)) == []
    )


def test_a_new_field_without_default_fails_resolution_in_fastavro() -> None:
    writer = REGISTRY.get("lead", 1)
    event = next(e for e in EVENTS if e["attribute"] == "lead")
    data = io.BytesIO()
    schemaless_writer(data, writer.parsed, to_avro_datum(event, writer))
    without = parse_schema(
        with_new_payload_field(REGISTRY.newest("lead").raw, NEW_WITHOUT_DEFAULT)
    )
    with_default = parse_schema(
        with_new_payload_field(REGISTRY.newest("lead").raw, NEW_WITH_DEFAULT)
    )

    with pytest.raises(SchemaResolutionError, match="No default value for field score"):
        schemaless_reader(io.BytesIO(data.getvalue()), writer.parsed, without)
    read = schemaless_reader(io.BytesIO(data.getvalue()), writer.parsed, with_default)
    assert read["payload"]["score"] is None


def write_v3(tmp_path: Path, new_field: dict[str, Any]) -> Path:
    root = tmp_path / "schemas"
    shutil.copytree(DEFAULT_SCHEMA_DIR, root)
    raw = json.loads((root / "v2" / "lead.avsc").read_text())
    v3 = with_new_payload_field(raw, new_field)
    v3["namespace"] = "engagementstream.v3"
    (root / "v3").mkdir()
    (root / "v3" / "lead.avsc").write_text(json.dumps(v3))
    return root


def test_loading_refuses_a_version_that_cannot_read_older_data(tmp_path: Path) -> None:
    root = write_v3(tmp_path, NEW_WITHOUT_DEFAULT)

    with pytest.raises(
        SchemaError, match=r"v3/lead\.avsc cannot read data written with"
    ):
        SchemaRegistry.load(root)


def test_loading_accepts_a_new_field_with_a_default(tmp_path: Path) -> None:
    registry = SchemaRegistry.load(write_v3(tmp_path, NEW_WITH_DEFAULT))

    assert registry.versions("lead") == (1, 2, 3)
    assert registry.newest("lead").full_name == "engagementstream.v3.Lead"
    assert registry.newest("cartStatus").version == 2


def record(name: str, *fields: tuple[str, Any], **extra: Any) -> dict[str, Any]:
    spec = [{"name": n, "type": t} for n, t in fields]
    return {"type": "record", "name": name, "fields": spec, **extra}


@pytest.mark.parametrize(
    ("writer", "reader", "problem"),
    [
        ("int", "long", None),
        ("int", "double", None),
        ("long", "float", None),
        ("string", "bytes", None),
        ("long", "int", "the writer's long cannot be read as int"),
        ("string", "double", "the writer's string cannot be read as double"),
        (["null", "string"], ["null", "double", "string"], None),
        (["null", "string"], ["null", "double"], "has no branch for string"),
        ("int", ["null", "long"], None),
        ({"type": "array", "items": "int"}, {"type": "array", "items": "long"}, None),
        ({"type": "map", "values": "long"}, {"type": "map", "values": "int"}, "cannot"),
        (record("a.R", ("x", "int")), record("b.R", ("x", "int")), None),
        (record("a.R", ("x", "int")), record("b.S", ("x", "int")), "cannot be read"),
        (
            record("a.R", ("x", "int")),
            record("b.S", ("x", "int"), aliases=["a.R"]),
            None,
        ),
        (record("R", ("x", "int")), record("R", ("y", "int")), "y: new in the reader"),
        (
            record("R", ("x", "int")),
            {
                "type": "record",
                "name": "R",
                "fields": [{"name": "y", "type": "int", "aliases": ["x"]}],
            },
            None,
        ),
        (record("R", ("x", "int")), record("R"), None),
        (
            {"type": "enum", "name": "E", "symbols": ["A", "B"]},
            {"type": "enum", "name": "E", "symbols": ["A"]},
            "lacks ['B']",
        ),
        (
            {"type": "enum", "name": "E", "symbols": ["A", "B"]},
            {"type": "enum", "name": "E", "symbols": ["A"], "default": "A"},
            None,
        ),
        (
            {"type": "fixed", "name": "F", "size": 4},
            {"type": "fixed", "name": "F", "size": 8},
            "cannot be read",
        ),
        (
            # The first matching branch is taken, by name: a text Date written by
            # an older writer would be resolved against the typed Date and fail.
            ["null", record("old.Date", ("year", "string"))],
            [
                "null",
                record("new.Date", ("year", "int")),
                record("new.TextDate", ("year", "string"), aliases=["old.Date"]),
            ],
            "year: the writer's string cannot be read as int",
        ),
        (
            record("Node", ("next", ["null", "Node"])),
            record("Node", ("next", ["null", "Node"])),
            None,
        ),
    ],
)
def test_compatibility_rules(writer: Any, reader: Any, problem: str | None) -> None:
    problems = compatibility_problems(writer, reader)

    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1
        assert problem in problems[0]
