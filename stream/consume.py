"""The ``consume`` command: print a typed topic or the dead letters as JSON lines.

Typed topics hold framed single-object Avro; the writer schema is found by its
fingerprint in ``schemas/``, so this command needs no schema registry. Dead
letters are JSON already. Each output line carries the message's position too.
By default the command reads what the topic holds now and stops; ``--follow``
keeps reading.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from stream.avro_codec import SINGLE_OBJECT_MARKER, decode_single_object
from stream.kafka_config import aiokafka_options
from stream.schemas import SchemaRegistry
from stream.settings import Settings, from_env


def render(
    message: ConsumerRecord[bytes, bytes], registry: SchemaRegistry
) -> dict[str, Any]:
    """One message as a JSON-ready dict: position, key, headers and decoded value."""
    value: Any
    raw = message.value or b""
    if raw.startswith(SINGLE_OBJECT_MARKER):
        value = decode_single_object(raw, registry)
    else:
        try:
            value = json.loads(raw)
        except ValueError:
            value = {"undecodable": raw.decode("utf-8", "replace")}
    return {
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "timestamp": message.timestamp,
        "key": message.key.decode("utf-8", "replace") if message.key else None,
        "headers": {
            name: data.decode("utf-8", "replace") for name, data in message.headers
        },
        "value": value,
    }


async def read_topic(
    settings: Settings, topic: str, follow: bool = False, idle_seconds: float = 2.0
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Yield every message of a topic from the start, up to its current end.

    With ``follow`` it keeps waiting for new messages instead of stopping.
    """
    consumer = AIOKafkaConsumer(
        **aiokafka_options(settings), enable_auto_commit=False, group_id=None
    )
    try:
        await consumer.start()
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise LookupError(f"topic {topic!r} does not exist")
        tps = [TopicPartition(topic, number) for number in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)

        while True:
            batch = await consumer.getmany(timeout_ms=int(idle_seconds * 1000))
            for messages in batch.values():
                for message in messages:
                    yield message
            if follow:
                continue
            positions = {tp: await consumer.position(tp) for tp in tps}
            if all(positions[tp] >= ends[tp] for tp in tps):
                return
    finally:
        await consumer.stop()


async def consume(settings: Settings, topic: str, follow: bool, out: TextIO) -> int:
    """Print a topic's messages as JSON lines; return how many."""
    registry = SchemaRegistry.load()
    count = 0
    async for message in read_topic(settings, topic, follow):
        out.write(json.dumps(render(message, registry), ensure_ascii=False) + "\n")
        count += 1
    return count


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``engagement-stream consume``."""
    parser = subparsers.add_parser(
        "consume", help="print a typed topic or the dead letters as JSON lines"
    )
    parser.add_argument("topic", help="topic name, e.g. leads or deadLetters")
    parser.add_argument(
        "--follow", action="store_true", help="keep reading new messages"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    settings = from_env()
    try:
        count = asyncio.run(consume(settings, args.topic, args.follow, sys.stdout))
    except LookupError as exc:
        print(f"consume: {exc.args[0]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(f"consume: {count} messages from {args.topic}", file=sys.stderr)
    return 0
