"""Topic names and the ``topics create`` command that ensures they exist.

Creation is idempotent: topics that already exist are left as they are (a
different partition count is reported, not changed, since changing it would
move conversations between partitions).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream.attributes import ATTRIBUTES
from stream.kafka_config import aiokafka_options
from stream.settings import Settings, from_env

log = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 6
DEFAULT_REPLICATION_FACTOR = 1
SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000
# Typed messages carry the event's serverTimeStamp as their Kafka timestamp, and
# Kafka applies time retention to message timestamps: with a finite retention,
# events that are already older than it (LivePerson re-fetches conversations
# days later) would be deleted as soon as their segment rolls. Keep them.
KEEP_FOREVER_MS = -1

# Raw records that arrive keyed by something other than their conversation id
# are forwarded here, keyed by conversation id, so one conversation's dedupe
# state lives in one partition.
REPARTITION_SUFFIX = "-by-conversation"
TOPIC_ALREADY_EXISTS = 36  # Kafka's error code


@dataclass(frozen=True)
class TopicPlan:
    """What ``topics create`` should make sure of."""

    partitions: int = DEFAULT_PARTITIONS
    replication_factor: int = DEFAULT_REPLICATION_FACTOR
    retention_ms: int = KEEP_FOREVER_MS  # typed attribute topics
    input_retention_ms: int = SEVEN_DAYS_MS  # raw input and its repartition topic
    dead_letter_retention_ms: int = SEVEN_DAYS_MS


def repartition_topic_name(settings: Settings) -> str:
    """The internal topic that holds mis-keyed input, keyed by conversation id."""
    return settings.input_topic_name + REPARTITION_SUFFIX


def planned_topics(settings: Settings, plan: TopicPlan) -> list[NewTopic]:
    """Every topic the service reads or writes, with its configuration."""
    retention = {
        settings.attribute_topic_name(a): plan.retention_ms for a in ATTRIBUTES
    }
    retention[settings.input_topic_name] = plan.input_retention_ms
    retention[repartition_topic_name(settings)] = plan.input_retention_ms
    retention[settings.dead_letter_topic_name] = plan.dead_letter_retention_ms

    topics = []
    for name, retention_ms in retention.items():
        config = {"retention.ms": str(retention_ms)}
        topics.append(
            NewTopic(
                name=name,
                num_partitions=plan.partitions,
                replication_factor=plan.replication_factor,
                topic_configs=config,
            )
        )
    return topics


async def ensure_topics(settings: Settings, plan: TopicPlan) -> dict[str, str]:
    """Create the missing topics; return each topic's outcome ("created"/"exists")."""
    admin = AIOKafkaAdminClient(**aiokafka_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = planned_topics(settings, plan)
        missing = [topic for topic in wanted if topic.name not in existing]
        if missing:
            response = await admin.create_topics(missing)
            _raise_for_refusals(response.to_object()["topic_errors"])
            await _wait_for_leaders(admin, [topic.name for topic in missing])
        outcome = {topic.name: "exists" for topic in wanted}
        outcome.update({topic.name: "created" for topic in missing})

        present = [t.name for t in wanted if t.name in existing]
        for name, count in (await _partition_counts(admin, present)).items():
            if count != plan.partitions:
                outcome[name] = f"exists with {count} partitions"
        return outcome
    finally:
        await admin.close()


class TopicCreationRefused(RuntimeError):
    """The cluster refused to create one or more topics."""


def _raise_for_refusals(topic_errors: list[dict[str, object]]) -> None:
    # "Already exists" means another worker or admin won the race: that is fine.
    refused = [
        f"{error['topic']}: {error['error_message'] or error['error_code']}"
        for error in topic_errors
        if error["error_code"] not in (0, TOPIC_ALREADY_EXISTS)
    ]
    if refused:
        raise TopicCreationRefused(
            "the cluster refused to create topics (check partitions, replication "
            "factor against the broker count, retention and permissions):\n  "
            + "\n  ".join(refused)
        )


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, names: list[str], timeout_seconds: float = 30.0
) -> None:
    """Wait until every partition of new topics has a leader.

    A producer that writes right after creation would otherwise get "not leader"
    answers and retry, which works but fills the log with warnings.
    """
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        described = await admin.describe_topics(names)
        if all(
            topic["error_code"] == 0
            and topic["partitions"]
            and all(p["leader"] >= 0 for p in topic["partitions"])
            for topic in described
        ):
            return
        await asyncio.sleep(0.2)
    log.warning(
        "new topics still lack leaders after %.0f s: %s", timeout_seconds, names
    )


async def _partition_counts(
    admin: AIOKafkaAdminClient, names: list[str]
) -> dict[str, int]:
    if not names:
        return {}
    described = await admin.describe_topics(names)
    return {topic["topic"]: len(topic["partitions"]) for topic in described}


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``engagement-stream topics create``."""
    parser = subparsers.add_parser("topics", help="manage the service's topics")
    actions = parser.add_subparsers(dest="action", required=True)
    create = actions.add_parser(
        "create", help="create every topic the service uses (idempotent)"
    )
    create.add_argument("--partitions", type=int, default=DEFAULT_PARTITIONS)
    create.add_argument(
        "--replication-factor", type=int, default=DEFAULT_REPLICATION_FACTOR
    )
    create.add_argument(
        "--retention-ms",
        type=int,
        default=KEEP_FOREVER_MS,
        help="retention of the typed attribute topics (default -1: keep forever)",
    )
    create.add_argument(
        "--input-retention-ms",
        type=int,
        default=SEVEN_DAYS_MS,
        help="retention of the raw input topic and its repartition topic",
    )
    create.add_argument(
        "--dead-letter-retention-ms",
        type=int,
        default=SEVEN_DAYS_MS,
        help="retention of the dead letter topic",
    )
    create.set_defaults(handler=_run_create)


def _run_create(args: argparse.Namespace) -> int:
    settings = from_env()
    plan = TopicPlan(
        partitions=args.partitions,
        replication_factor=args.replication_factor,
        retention_ms=args.retention_ms,
        input_retention_ms=args.input_retention_ms,
        dead_letter_retention_ms=args.dead_letter_retention_ms,
    )
    try:
        outcome = asyncio.run(ensure_topics(settings, plan))
    except TopicCreationRefused as exc:
        print(f"topics create: {exc}", file=sys.stderr)
        return 1
    for name, state in outcome.items():
        print(f"{name}: {state}")
    return 0
