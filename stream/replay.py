"""The ``replay`` command: produce raw conversation records to the input topic.

Each record is keyed by its conversation id (so a conversation stays in one
partition) and carries the API version in the ``apiVersion`` header. Records that
cannot be parsed are produced unchanged and unkeyed: the worker dead-letters them,
which is what a replay of nasty input should show.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from aiokafka import AIOKafkaProducer

from stream.kafka_config import aiokafka_options
from stream.settings import Settings, from_env

log = logging.getLogger(__name__)

API_VERSION_HEADER = "apiVersion"


def expand(paths: list[Path]) -> list[Path]:
    """Files as given; a directory stands for its .json and .jsonl files, sorted."""
    files = []
    for path in paths:
        if path.is_dir():
            files += sorted(
                p for p in path.iterdir() if p.suffix in (".json", ".jsonl")
            )
        else:
            files.append(path)
    return files


def read_records(path: Path) -> Iterator[bytes]:
    """Yield raw records: one per line of a JSON Lines file, or a whole .json file."""
    data = path.read_bytes()
    if path.suffix == ".json":
        yield data
        return
    for line in data.split(b"\n"):
        if line.strip():
            yield line


def conversation_key(raw: bytes) -> bytes | None:
    """The record's conversation id as UTF-8, or None when it cannot be read."""
    try:
        record = json.loads(raw)
        conversation_id = record["info"]["conversationId"]
    except (ValueError, TypeError, KeyError, RecursionError):
        return None
    if not isinstance(conversation_id, str) or not conversation_id:
        return None
    try:
        return conversation_id.encode("utf-8")
    except UnicodeEncodeError:
        return None


async def replay(
    settings: Settings,
    paths: list[Path],
    api_version: int | None,
    topic: str | None = None,
    keyed: bool = True,
) -> int:
    """Produce every record of the files; return how many were produced."""
    target = topic or settings.input_topic_name
    headers = []
    if api_version is not None:
        headers.append((API_VERSION_HEADER, str(api_version).encode("ascii")))

    producer = AIOKafkaProducer(**aiokafka_options(settings), linger_ms=10, acks="all")
    try:
        await producer.start()
        pending = []
        for path in paths:
            for raw in read_records(path):
                key = conversation_key(raw) if keyed else None
                pending.append(
                    await producer.send(target, raw, key=key, headers=headers)
                )
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    log.info("replayed %d records to %s", len(pending), target)
    return len(pending)


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``engagement-stream replay``."""
    parser = subparsers.add_parser(
        "replay", help="produce raw conversation records to the input topic"
    )
    parser.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="a .jsonl file (one record per line), a .json file (one record) "
        "or a directory of them",
    )
    parser.add_argument(
        "--api-version",
        type=int,
        choices=(1, 2),
        help="API version the records came from (sent as the apiVersion header)",
    )
    parser.add_argument("--topic", help="produce here instead of the input topic")
    parser.add_argument(
        "--unkeyed",
        action="store_true",
        help="produce without keys (the worker then repartitions by conversation)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    args.paths = expand(args.paths)
    for path in args.paths:
        if not path.is_file():
            print(f"replay: {path}: no such file", file=sys.stderr)
            return 2
    settings = from_env()
    count = asyncio.run(
        replay(settings, args.paths, args.api_version, args.topic, not args.unkeyed)
    )
    print(f"replayed {count} records to {args.topic or settings.input_topic_name}")
    return 0
