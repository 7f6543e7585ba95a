"""The benchmark's input: the sample records scaled up, with repeats and nasty ones.

Every sample record becomes many conversations, each with a fresh id and fetched
twice, as a poller of the Messaging Interactions API sees it: first OPEN with
all but its last event, then CLOSE with every event (so the second fetch
repeats all but one event, which the dedupe state must drop). About one record
in a hundred is an edge case from the test corpus (invalid JSON, bad encoding,
deep nesting, duplicate keys, wrong types...), sent as it is.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
EDGE = ROOT / "tests" / "data" / "corpus" / "edge"

# Conversations whose OPEN fetches come before their CLOSE fetches: a poller
# sees a window of open conversations, not one conversation at a time.
WINDOW = 500
EDGE_SHARE = 0.01


@dataclass(frozen=True, slots=True)
class Record:
    """One input message: raw bytes, key and API version header."""

    value: bytes
    key: bytes | None
    api_version: int


def sample_records() -> list[tuple[dict[str, Any], int]]:
    """The parsed sample records with their API version."""
    samples = []
    for version in (1, 2):
        text = (EXAMPLES / f"records-v{version}.jsonl").read_bytes()
        for line in text.splitlines():
            if line.strip():
                samples.append((orjson.loads(line), version))
    return samples


def edge_records() -> list[Record]:
    """The nasty records of the test corpus, byte for byte."""
    records = []
    for path in sorted(EDGE.iterdir()):
        version = 1 if path.name.startswith("v1-") else 2
        if path.suffix == ".jsonl":
            lines = [line for line in path.read_bytes().splitlines() if line.strip()]
        elif path.suffix == ".json":
            lines = [path.read_bytes()]
        else:
            continue
        for raw in lines:
            records.append(Record(raw, _key_of(raw), version))
    return records


def _key_of(raw: bytes) -> bytes | None:
    try:
        record = orjson.loads(raw)
        return str(record["info"]["conversationId"]).encode()
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


def generate(count: int, seed: int = 7) -> Iterator[Record]:
    """``count`` input records, the same ones for the same seed."""
    rng = random.Random(seed)
    samples = sample_records()
    edges = edge_records()
    produced = 0
    while produced < count:
        window = [rng.choice(samples) for _ in range(WINDOW)]
        ids = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in window]
        for snapshot in ("OPEN", "CLOSE"):
            for (record, version), conversation in zip(window, ids, strict=True):
                if rng.random() < EDGE_SHARE:
                    yield rng.choice(edges)
                else:
                    yield _fetch(record, version, conversation, snapshot)
                produced += 1
                if produced >= count:
                    return


def _fetch(
    record: dict[str, Any], version: int, conversation: str, status: str
) -> Record:
    copy = dict(record)
    copy["info"] = {**record["info"], "conversationId": conversation, "status": status}
    if status == "OPEN":
        sdes = record.get("sdes")
        if isinstance(sdes, dict) and len(sdes.get("events") or []) > 1:
            copy["sdes"] = {**sdes, "events": sdes["events"][:-1]}
    return Record(orjson.dumps(copy), conversation.encode(), version)
