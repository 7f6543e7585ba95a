"""The benchmark: decode cost, worker against a plain aiokafka loop, scale-out, memory.

Run: .venv/bin/python bench/run.py [--records N] [--quick]

It builds its input from the sample records (see workload.py), starts a broker
on loopback unless KAFKA_BOOTSTRAP_SERVERS names one, and prints a table and,
last, one line of ratios:
``bench: decode_vs_json=<x> e2e_vs_reference=<y> scaleout=<z> rss_mb=<m>``.
The machine is shared and noisy, so runs alternate (reference, worker, two
workers, and again) and each ratio is taken between medians of the same run.
"events/s" is the rate while every process of a run has work (see measure.py);
"whole run" is every output over the time from the first output to the last,
start-up, rebalance and uneven finish included.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from itertools import islice

import cpu
import measure
from workload import generate

from stream.devbroker import DevBroker

PARTITIONS = 8


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--records",
        type=int,
        help="raw records of the memory run (default 1,000,000; 100,000 quick)",
    )
    parser.add_argument(
        "--e2e-records",
        type=int,
        help="raw records of each throughput run (default 100,000; 20,000 quick)",
    )
    parser.add_argument("--cycles", type=int, help="reference/worker/pair cycles")
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run")
    args = parser.parse_args()
    quick = args.quick
    args.records = args.records or (100_000 if quick else 1_000_000)
    args.e2e_records = args.e2e_records or (20_000 if quick else 100_000)
    args.cycles = args.cycles or (2 if quick else 3)
    return args


def cpu_section() -> tuple[float, dict[str, float]]:
    records = list(generate(10_000, seed=1))
    costs = cpu.decode_costs(records)
    ratio = costs["decode_encode"] / costs["json_loads"]
    print("CPU, same process, same records:")
    for name in ("json_loads", "decode", "decode_encode", "dedupe_keys"):
        per_record = costs[name] / costs["records"] * 1e6
        share = costs[name] / costs["json_loads"]
        print(f"  {name:<14} {per_record:8.1f} us/record  {share:5.2f}x json.loads")

    memory = cpu.dedupe_memory(list(generate(50_000, seed=2)))
    print(
        f"dedupe state: {memory['digests']:.0f} digests of "
        f"{memory['conversations']:.0f} conversations, "
        f"{memory['bytes_per_digest']:.0f} bytes per digest "
        f"({memory['bytes_per_conversation']:.0f} per conversation)"
    )
    return ratio, memory


async def throughput_section(
    bootstrap: str, records: int, cycles: int
) -> tuple[float, float]:
    topic = f"bench-in-{uuid.uuid4().hex[:8]}"
    base = measure.input_env(bootstrap, topic)
    await measure.create_topics(measure.run_env(base, "setup"), PARTITIONS)
    await asyncio.sleep(2)  # let the new partitions elect their leader
    started = time.monotonic()
    produced = await measure.produce(bootstrap, topic, generate(records, seed=3))
    print(f"\ninput: {produced} records in {time.monotonic() - started:.1f} s")

    results: dict[str, list[measure.RunResult]] = {"ref": [], "worker": [], "pair": []}
    plan = [("ref", "reference", 1), ("worker", "worker", 1), ("pair", "worker", 2)]
    print(
        f"{'run':<8}{'events/s':>10}{'whole run':>11}{'CPU us/event':>14}"
        f"{'peak RSS MB':>13}{'outputs':>10}"
    )
    for _ in range(cycles):
        for name, kind, processes in plan:
            result = await measure.run(kind, processes, base, PARTITIONS)
            results[name].append(result)
            print(
                f"{name:<8}{result.events_per_second:>10,.0f}"
                f"{result.whole_run_events_per_second:>11,.0f}"
                f"{result.cpu_us_per_event:>14.0f}{result.peak_rss_mb:>13.0f}"
                f"{result.outputs:>10}"
            )

    rate = {
        name: statistics.median(r.events_per_second for r in runs)
        for name, runs in results.items()
    }
    spread = {
        name: (
            min(r.events_per_second for r in runs),
            max(r.events_per_second for r in runs),
        )
        for name, runs in results.items()
    }
    for name in rate:
        low, high = spread[name]
        print(
            f"median {name}: {rate[name]:,.0f} events/s (range {low:,.0f}-{high:,.0f})"
        )
    return _ratio(rate["worker"], rate["ref"]), _ratio(rate["pair"], rate["worker"])


def _ratio(numerator: float, denominator: float) -> float:
    """A ratio, or NaN when a run was too short to time."""
    return numerator / denominator if denominator else float("nan")


async def memory_section(bootstrap: str, records: int) -> measure.RunResult:
    topic = f"bench-rss-{uuid.uuid4().hex[:8]}"
    base = measure.input_env(bootstrap, topic)
    await measure.create_topics(measure.run_env(base, "setup"), PARTITIONS)
    await asyncio.sleep(2)  # let the new partitions elect their leader
    started = time.monotonic()
    produced = await measure.produce(
        bootstrap, topic, islice(generate(records, seed=4), records)
    )
    print(
        f"\nmemory run: {produced} records produced"
        f" in {time.monotonic() - started:.0f} s"
    )
    result = await measure.run("worker", 1, base, PARTITIONS)
    print(
        f"one worker: {result.outputs} outputs,"
        f" {result.events_per_second:,.0f} events/s,"
        f" peak RSS (VmHWM) {result.peak_rss_mb:.0f} MB"
    )
    return result


def main() -> None:
    args = parse_args()
    ratio, _ = cpu_section()

    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        broker = DevBroker(heap="1g").start()
        bootstrap = broker.bootstrap_servers
    try:
        e2e, scaleout = asyncio.run(
            throughput_section(bootstrap, args.e2e_records, args.cycles)
        )
        rss = asyncio.run(memory_section(bootstrap, args.records)).peak_rss_mb
    finally:
        if broker is not None:
            broker.stop()

    print(
        f"bench: decode_vs_json={ratio:.2f} e2e_vs_reference={e2e:.2f} "
        f"scaleout={scaleout:.2f} rss_mb={rss:.0f}"
    )


if __name__ == "__main__":
    main()
