"""Decode speed on the sample corpus against json.loads of the same records.

Single core, CPU time (time.process_time), the median of several repeats.
Run: .venv/bin/python bench/decode_bench.py [--repeats N] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from stream.decoder import decode_record

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "corpus"


def load(version: int) -> list[bytes]:
    raw = (CORPUS / f"records-v{version}.jsonl").read_bytes()
    return [line for line in raw.split(b"\n") if line.strip()]


def cpu_seconds(work: Callable[[], object], rounds: int, repeats: int) -> float:
    """Median CPU seconds of `rounds` calls of work, over `repeats` runs."""
    samples = []
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(rounds):
            work()
        samples.append(time.process_time() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()

    for version in (1, 2):
        records = load(version)
        events = sum(len(decode_record(r, version).events) for r in records)

        def decode_all(records: list[bytes] = records, version: int = version) -> None:
            for record in records:
                decode_record(record, version)

        def loads_all(records: list[bytes] = records) -> None:
            for record in records:
                json.loads(record)

        decode_s = cpu_seconds(decode_all, args.rounds, args.repeats)
        loads_s = cpu_seconds(loads_all, args.rounds, args.repeats)
        done = len(records) * args.rounds
        print(
            f"records-v{version}.jsonl: {done / decode_s:,.0f} records/s,"
            f" {events * args.rounds / decode_s:,.0f} events/s,"
            f" decode/json.loads CPU ratio {decode_s / loads_s:.2f}"
        )


if __name__ == "__main__":
    main()
