"""The ``demo`` command: the whole service once, on the sample records.

It starts a local Kafka broker (unless ``KAFKA_BOOTSTRAP_SERVERS`` names one),
creates the topics, starts a worker, replays the v1 and v2 sample records, waits
until the worker has committed all of them, prints a summary per topic with a
few decoded records and the worker's own metric counts, then stops everything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from stream.consume import read_topic, render
from stream.kafka_config import aiokafka_options
from stream.replay import replay
from stream.schemas import SchemaRegistry
from stream.settings import Settings, from_env
from stream.topics import TopicPlan, ensure_topics

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SAMPLES = ((EXAMPLES / "records-v1.jsonl", 1), (EXAMPLES / "records-v2.jsonl", 2))
# A few broken records, so the dead letter queue has something to show.
NASTY = sorted((EXAMPLES / "nasty").glob("*.json"))
SHOWN_PER_TOPIC = 2
SHOWN_CHARACTERS = 400


@contextlib.contextmanager
def local_broker(keep_external: bool) -> Iterator[str]:
    """Yield bootstrap servers: the user's broker, or a fresh local one."""
    if keep_external:
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    from stream.devbroker import DevBroker

    with DevBroker() as broker:
        yield broker.bootstrap_servers


@contextlib.contextmanager
def running_worker(
    settings: Settings, log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``engagement-stream worker`` in a child process, stopped on exit."""
    env = dict(os.environ)
    env["KAFKA_BOOTSTRAP_SERVERS"] = settings.bootstrap_servers
    env["ES_HTTP_PORT"] = str(settings.http_port)
    env["ES_APP_ID"] = settings.app_id
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "worker"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def committed_all(settings: Settings) -> bool:
    """True when the worker's group has committed the input topic's end offsets."""
    admin = AIOKafkaAdminClient(**aiokafka_options(settings))
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(settings.app_id)
        described = await admin.describe_topics([settings.input_topic_name])
    finally:
        await admin.close()
    tps = [
        TopicPartition(settings.input_topic_name, p["partition"])
        for p in described[0]["partitions"]
    ]
    ends = await _end_offsets(settings, tps)
    return all(
        ends[tp] == 0 or (tp in committed and committed[tp].offset >= ends[tp])
        for tp in tps
    )


async def _end_offsets(
    settings: Settings, tps: list[TopicPartition]
) -> dict[TopicPartition, int]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(**aiokafka_options(settings), group_id=None)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


def wait_until_processed(
    settings: Settings, worker: subprocess.Popen[bytes], timeout_seconds: float
) -> None:
    """Block until the worker committed every replayed record."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited early with code {worker.returncode}")
        try:
            if asyncio.run(committed_all(settings)):
                return
        except KafkaError:
            pass  # the group coordinator is still loading; ask again
        time.sleep(1.0)
    raise TimeoutError(f"the worker did not catch up within {timeout_seconds:.0f} s")


async def topic_summary(
    settings: Settings,
) -> list[tuple[str, int, list[dict[str, Any]]]]:
    """(topic, message count, first few decoded messages) for every output topic."""
    registry = SchemaRegistry.load()
    names = [settings.attribute_topic_name(a) for a in registry.attributes()]
    names.append(settings.dead_letter_topic_name)
    summary = []
    for name in names:
        count = 0
        shown: list[dict[str, Any]] = []
        async for message in read_topic(settings, name, idle_seconds=0.5):
            count += 1
            if len(shown) < SHOWN_PER_TOPIC:
                shown.append(render(message, registry))
        summary.append((name, count, shown))
    return summary


def scrape_published(port: int) -> Counter[str]:
    """Published events per attribute, read from the worker's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    published: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith("engagement_stream_events_published_total{"):
            labels, value = line.rsplit(" ", 1)
            attribute = labels.split('attribute="', 1)[1].split('"', 1)[0]
            published[attribute] += int(float(value))
    return published


def print_summary(
    summary: list[tuple[str, int, list[dict[str, Any]]]], out: Any
) -> None:
    """Print the per-topic table and a few decoded records."""
    out.write("\n== Messages per output topic ==\n")
    for name, count, _ in summary:
        out.write(f"  {name:<24} {count:>5}\n")
    for name, count, shown in summary:
        if not shown:
            continue
        out.write(f"\n== {name}: first {len(shown)} of {count} ==\n")
        for message in shown:
            text = json.dumps(message["value"], ensure_ascii=False)
            if len(text) > SHOWN_CHARACTERS:
                text = text[:SHOWN_CHARACTERS] + " …(cut)"
            out.write(text + "\n")


def run_demo(http_port: int, out: Any) -> int:
    """Run the whole demo; return the exit code."""
    external = bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    with local_broker(external) as servers, tempfile.TemporaryDirectory() as tmp:
        run = f"demo-{int(time.time())}"
        settings = from_env().replace(
            bootstrap_servers=servers,
            http_port=http_port or _free_port(),
            app_id=f"engagement-stream-{run}",
        )
        if external:
            # On a real cluster the demo must not write into real topics.
            settings = settings.replace(topic_prefix=f"{settings.topic_prefix}{run}.")
            out.write(f"using topic prefix {settings.topic_prefix!r} on that cluster\n")
        http_port = settings.http_port
        out.write(f"Kafka at {servers}\n")
        asyncio.run(ensure_topics(settings, TopicPlan()))
        out.write("topics created\n")

        log_path = Path(tmp) / "worker.log"
        with running_worker(settings, log_path) as worker:
            replayed = 0
            for path, version in SAMPLES:
                replayed += asyncio.run(replay(settings, [path], version))
            replayed += asyncio.run(replay(settings, NASTY, 2))
            out.write(
                f"replayed {replayed} records ({len(NASTY)} of them broken on "
                "purpose); waiting for the worker\n"
            )
            try:
                wait_until_processed(settings, worker, timeout_seconds=180)
            except (RuntimeError, TimeoutError) as exc:
                out.write(f"demo failed: {exc}; worker log:\n")
                out.write(log_path.read_text(errors="replace")[-4000:])
                return 1
            published = scrape_published(http_port)

        print_summary(asyncio.run(topic_summary(settings)), out)
        out.write("\n== Worker metrics (engagement_stream_events_published_total) ==\n")
        for attribute, count in sorted(published.items()):
            out.write(f"  {attribute:<24} {count:>5}\n")
        out.write(
            f"\nThe worker served its metrics at http://127.0.0.1:{http_port}/metrics "
            "while it ran; a worker started with 'engagement-stream worker' "
            "serves them on ES_HTTP_PORT (8080 by default).\n"
        )
    return 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``engagement-stream demo``."""
    parser = subparsers.add_parser(
        "demo", help="run the whole service once on the sample records"
    )
    parser.add_argument(
        "--http-port",
        type=int,
        default=0,
        help="the worker's metrics port (default: a free one)",
    )
    parser.set_defaults(handler=lambda args: run_demo(args.http_port, sys.stdout))
