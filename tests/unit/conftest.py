"""Corpus loading helpers shared by the unit tests."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"
EDGE = CORPUS / "edge"
SAMPLE_FILES = {1: CORPUS / "records-v1.jsonl", 2: CORPUS / "records-v2.jsonl"}


def jsonl_records(path: Path) -> list[bytes]:
    """The raw records of a JSON Lines file, split on LF only."""
    return [line for line in path.read_bytes().split(b"\n") if line.strip()]


def sample_records(version: int) -> list[bytes]:
    """The raw records of records-v<version>.jsonl."""
    return jsonl_records(SAMPLE_FILES[version])


def sample_expected(version: int) -> list[dict[str, Any]]:
    """records-v<version>.expected.jsonl, one entry per input line."""
    text = (CORPUS / f"records-v{version}.expected.jsonl").read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def edge_expected() -> dict[str, dict[str, Any]]:
    """edge-expected.json: per edge file, its outcome, events and dead letters."""
    loaded: dict[str, dict[str, Any]] = json.loads(
        (CORPUS / "edge-expected.json").read_text("utf-8")
    )
    return loaded


def edge_records(name: str) -> list[bytes]:
    """The records of one edge file: a .json file is one record."""
    path = EDGE / name
    return [path.read_bytes()] if name.endswith(".json") else jsonl_records(path)


def all_corpus_records() -> list[tuple[str, bytes, int]]:
    """(label, raw record, api version) for every record of the corpus."""
    found = [
        (f"records-v{version}.jsonl:{number}", raw, version)
        for version in SAMPLE_FILES
        for number, raw in enumerate(sample_records(version), 1)
    ]
    for name, expected in edge_expected().items():
        for number, raw in enumerate(edge_records(name), 1):
            found.append((f"{name}:{number}", raw, expected["apiVersion"]))
    return found


def as_multiset(items: Iterable[Any]) -> Counter[str]:
    """JSON values as a multiset, insensitive to key order."""
    return Counter(json.dumps(item, sort_keys=True) for item in items)
