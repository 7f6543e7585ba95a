"""In-process measures: decode and encode CPU against json.loads, dedupe key memory.

Both run on the benchmark's own input, in this process, with nothing else going
on in it; CPU time is ``time.process_time`` and each figure the median of a few
repeats.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
import tracemalloc
from collections.abc import Callable

from workload import Record

from stream.avro_codec import encode_single_object
from stream.dead_letters import SourcePosition
from stream.decoder import decode_record
from stream.dedupe import dedupe_key
from stream.dedupe_state import TableSeenEvents
from stream.processor import BatchProcessor, RawRecord, remember_all
from stream.schemas import SchemaRegistry
from stream.settings import Settings

REPEATS = 5


def cpu_seconds(work: Callable[[], object]) -> float:
    """Median CPU seconds of one call of ``work``."""
    samples = []
    for _ in range(REPEATS):
        started = time.process_time()
        work()
        samples.append(time.process_time() - started)
    return statistics.median(samples)


def decode_costs(records: list[Record]) -> dict[str, float]:
    """CPU of json.loads, decode, decode + Avro encode and the dedupe keys."""
    schemas = SchemaRegistry.load().published_schemas()

    def loads() -> None:
        for record in records:
            # The nasty records: json.loads pays up to its failure.
            with contextlib.suppress(ValueError, RecursionError):
                json.loads(record.value)

    def decode() -> None:
        for record in records:
            decode_record(record.value, record.api_version)

    def decode_encode() -> None:
        for record in records:
            for event in decode_record(record.value, record.api_version).events:
                encode_single_object(event, schemas[event.attribute])

    events = [
        event
        for record in records
        for event in decode_record(record.value, record.api_version).events
    ]

    def keys() -> None:
        for event in events:
            dedupe_key(event)

    return {
        "json_loads": cpu_seconds(loads),
        "decode": cpu_seconds(decode),
        "decode_encode": cpu_seconds(decode_encode),
        "dedupe_keys": cpu_seconds(keys),
        "records": len(records),
        "events": len(events),
    }


class _Table:
    """Just enough of a faust table for TableSeenEvents: its store."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}


async def _no_changelog(partition: int, key: bytes, value: bytes | None) -> None:
    """Never called: only memory is measured here, changelog writes are dropped."""


def dedupe_memory(records: list[Record]) -> dict[str, float]:
    """Bytes the dedupe state holds per stored digest, traced with tracemalloc."""
    processor = BatchProcessor(Settings(), SchemaRegistry.load())
    table = _Table()
    state = TableSeenEvents(table, 30 * 24 * 3600, _no_changelog)
    raws = [
        RawRecord(
            r.value,
            r.key,
            [("apiVersion", str(r.api_version).encode())],
            SourcePosition("in", 0, i, None),
        )
        for i, r in enumerate(records)
    ]

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for start in range(0, len(raws), 500):
        outcome = processor.process(raws[start : start + 500], state)
        remember_all(outcome, state)
        state.unwritten.clear()  # the worker sends these after every batch
        del outcome
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()

    conversations, digests = state.size()
    return {
        "conversations": conversations,
        "digests": digests,
        "bytes_per_digest": held / max(digests, 1),
        "bytes_per_conversation": held / max(conversations, 1),
    }
