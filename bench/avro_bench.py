"""Measure Avro encoding speed: events/s and CPU against json.loads of the records.

Run from the repository root: ``.venv/bin/python bench/avro_bench.py``. It encodes
every canonical event of the corpus expected files as framed single-object Avro
with each attribute's newest schema, and quotes the CPU time of encoding the
events of records-v2 against the CPU time of ``json.loads`` of its raw lines
(absolute numbers move a lot on a shared machine; the ratio is what to compare).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stream.avro_codec import decode_single_object, encode_single_object
from stream.schemas import AvroSchema, SchemaRegistry

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "corpus"


def expected_events(name: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for line in (CORPUS / name).read_text(encoding="utf-8").splitlines():
        events.extend(json.loads(line)["emit"])
    return events


def edge_events() -> list[dict[str, Any]]:
    cases = json.loads((CORPUS / "edge-expected.json").read_text(encoding="utf-8"))
    return [event for case in cases.values() for event in case.get("emit", [])]


def cpu_seconds(work: Callable[[], object], repeats: int) -> float:
    """The best CPU time of one call of ``work`` over ``repeats`` calls."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return best


def encode_all(pairs: list[tuple[dict[str, Any], AvroSchema]], rounds: int) -> None:
    for _ in range(rounds):
        for event, schema in pairs:
            encode_single_object(event, schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50, help="passes per timing")
    parser.add_argument("--repeats", type=int, default=7, help="timings, best kept")
    args = parser.parse_args()

    registry = SchemaRegistry.load()
    v2_events = expected_events("records-v2.expected.jsonl")
    every = [*expected_events("records-v1.expected.jsonl"), *v2_events, *edge_events()]
    raw_v2 = (CORPUS / "records-v2.jsonl").read_text(encoding="utf-8").splitlines()

    def pairs(events: list[dict[str, Any]]) -> list[tuple[dict[str, Any], AvroSchema]]:
        return [(e, registry.newest(e["attribute"])) for e in events]

    every_pairs, v2_pairs = pairs(every), pairs(v2_events)
    encoded = [encode_single_object(e, s) for e, s in every_pairs]
    rounds, repeats = args.rounds, args.repeats

    encode_every = cpu_seconds(lambda: encode_all(every_pairs, rounds), repeats)
    encode_v2 = cpu_seconds(lambda: encode_all(v2_pairs, rounds), repeats)
    parse_v2 = cpu_seconds(lambda: [json.loads(x) for x in raw_v2 * rounds], repeats)
    decode_every = cpu_seconds(
        lambda: [decode_single_object(b, registry) for b in encoded * rounds], repeats
    )

    per_event_us = encode_every / (len(every) * rounds) * 1e6
    v2_counts = f"records-v2: {len(v2_events)} from {len(raw_v2)} records"
    print(f"events: {len(every)} ({v2_counts})")
    print(f"encode: {1e6 / per_event_us:,.0f} events/s ({per_event_us:.1f} us/event)")
    decode_us = decode_every / (len(every) * rounds) * 1e6
    print(f"decode: {1e6 / decode_us:,.0f} events/s ({decode_us:.1f} us/event)")
    print(
        f"records-v2: encoding its events costs {encode_v2 / parse_v2:.2f}x"
        " the CPU of json.loads of its raw lines"
    )
    bytes_total = sum(len(b) for b in encoded)
    print(f"framed size: {bytes_total / len(encoded):.0f} bytes/event on average")


if __name__ == "__main__":
    main()
