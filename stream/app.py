"""The faust app: topics, the dedupe table and the agent that runs the batches.

The agent reads raw bytes (faust's codecs are off, so faust can never reject or
drop a record: every record reaches the decoder), takes batches without faust's
automatic acknowledgement, produces every output, waits until the broker has
acknowledged all of them and only then acknowledges the batch's records. An
offset is therefore committed only after everything derived from it is stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import faust
from mode import CrashingSupervisor

from stream.dead_letters import SourcePosition
from stream.dedupe_state import ChangelogSender, TableSeenEvents
from stream.faust_transport import WorkerFaustApp
from stream.handoff import Handoff
from stream.health import Readiness
from stream.kafka_config import faust_broker_options
from stream.metrics import Metrics
from stream.processor import (
    BatchOutcome,
    BatchProcessor,
    Outgoing,
    RawRecord,
    SeenEvents,
    remember_all,
)
from stream.schemas import SchemaRegistry
from stream.settings import Settings
from stream.topics import repartition_topic_name

log = logging.getLogger(__name__)

DEDUPE_TABLE = "dedupe"
# How often the agent sweeps expired conversations out of the dedupe state.
EXPIRY_SWEEP_SECONDS = 60.0


class ProduceFailed(RuntimeError):
    """The broker did not acknowledge an output; the batch stays unacknowledged.

    Not retriable here: aiokafka has already retried for its delivery timeout.
    The worker stops so its records are consumed again after a restart.
    """


@dataclass
class WorkerApp:
    """The faust app and the objects its agent uses."""

    app: faust.App
    processor: BatchProcessor
    state: TableSeenEvents
    metrics: Metrics
    readiness: Readiness
    runner: BatchRunner | None = None


def build_app(
    settings: Settings,
    registry: SchemaRegistry,
    metrics: Metrics,
    readiness: Readiness,
    partitions: int,
    monitor: Any = None,
) -> WorkerApp:
    """Create the faust app for a topic layout with ``partitions`` per topic."""
    app = WorkerFaustApp(
        settings.app_id,
        monitor=monitor,
        **faust_broker_options(settings),
        key_serializer="raw",
        value_serializer="raw",
        store="memory://",
        datadir=settings.data_dir,
        topic_partitions=partitions,
        topic_replication_factor=1,
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger=0.01,
        producer_max_batch_size=512 * 1024,
        stream_buffer_maxsize=max(4 * settings.batch_size, 4096),
        web_enabled=False,
        autodiscover=False,
    )
    repartition = repartition_topic_name(settings)
    source = app.topic(
        settings.input_topic_name,
        repartition,
        key_type=bytes,
        value_type=bytes,
    )
    table = app.Table(
        DEDUPE_TABLE,
        default=None,
        key_type=bytes,
        value_type=bytes,
        partitions=partitions,
        help="Dedupe digests of the events each conversation published.",
    )
    state = TableSeenEvents(
        table, settings.dedupe_retention_seconds, _changelog_sender(app, table)
    )
    processor = BatchProcessor(settings, registry, repartition_topic=repartition)
    worker_app = WorkerApp(app, processor, state, metrics, readiness)

    handoff = Handoff()
    app.hand_over(frozenset({settings.input_topic_name, repartition}), handoff)
    runner = BatchRunner(worker_app, settings, handoff)
    worker_app.runner = runner
    # A failed batch must stop the worker: faust's default supervisor would
    # restart the agent past the unacknowledged records, and the commit could
    # then never move beyond them.
    app.agent(
        source,
        name="decode-attributes",
        concurrency=1,
        supervisor_strategy=CrashingSupervisor,
    )(runner.agent)
    return worker_app


class BatchRunner:
    """The agent body: batches in, outputs produced and acknowledged, records acked."""

    def __init__(
        self, worker_app: WorkerApp, settings: Settings, handoff: Handoff
    ) -> None:
        self.worker_app = worker_app
        self.settings = settings
        self.handoff = handoff

    async def agent(self, stream: Any) -> None:
        """Consume the input in batches until the worker stops.

        The worker's consumer puts fetched batches on a ``Handoff`` instead of
        passing each message through the agent's channel (see
        ``faust_transport``); the stream is only iterated to subscribe to the
        topics. While one batch waits for its acknowledgements, the next one is
        taken, decoded and sent; a batch's records are still acknowledged only
        after all its outputs, and batches finish in order.
        """
        aiter(stream.channel)  # subscribes the consumer to the topics
        finishing: asyncio.Task[None] | None = None
        in_flight: BatchOutcome | None = None
        try:
            while True:
                messages = await self.take()
                if not messages:
                    continue
                outcome = self.worker_app.processor.process(
                    [_raw_record(message) for message in messages],
                    PendingSeenEvents(self.worker_app.state, in_flight),
                )
                sends = await self.send_all(outcome.messages)

                if finishing is not None:
                    await finishing
                finishing = asyncio.create_task(self.finish(sends, outcome, messages))
                in_flight = outcome
        finally:
            if finishing is not None and not finishing.done():
                finishing.cancel()

    async def take(self) -> list[Any]:
        """The next batch of messages this worker may still process."""
        settings = self.settings
        fetched = await self.handoff.take(
            settings.batch_size, settings.batch_within_seconds
        )
        return [message for message in fetched if self.admit(message)]

    def admit(self, message: Any) -> bool:
        """Keep a message unless a rebalance took its partition; track it for acks.

        This is what faust's stream iteration does before handing an event on:
        a message fetched before a rebalance belongs to the old assignment, and
        a tracked message makes faust wait for its ack before committing on
        revocation, so a partition moves with nothing of it in flight.
        """
        app = self.worker_app.app
        if (
            not app.flow_control.is_active()
            or message.generation_id != app.consumer_generation_id
        ):
            return False
        if not message.tracked:
            message.tracked = True
            app.consumer.track_message(message)
        return True

    async def finish(
        self, sends: list[Any], outcome: BatchOutcome, messages: Sequence[Any]
    ) -> None:
        """Wait for a batch's outputs, then store its dedupe digests and ack it."""
        wa = self.worker_app
        started = time.perf_counter()
        await self.acknowledged(sends)
        wa.metrics.observe_produce_ack_seconds(time.perf_counter() - started)

        remember_all(outcome, wa.state)
        await wa.state.written()
        consumer = wa.app.consumer
        for message in messages:
            message.ack(consumer)
        self.count(outcome)

    async def send_all(self, messages: list[Outgoing]) -> list[Any]:
        """Hand every message to the producer; return their delivery futures."""
        producer = self.worker_app.app.producer
        pending = []
        for message in messages:
            timestamp = None
            if message.timestamp_ms is not None:
                # faust takes seconds and truncates back to ms: add half a ms
                # so the float round trip cannot land one ms early.
                timestamp = (message.timestamp_ms + 0.5) / 1000.0
            pending.append(
                await producer.send(
                    message.topic,
                    message.key,
                    message.value,
                    None,
                    timestamp,
                    message.headers,
                )
            )
        return pending

    async def acknowledged(self, pending: list[Any]) -> None:
        """Wait until the broker acknowledged every message of a batch."""
        try:
            await asyncio.gather(*pending)
        except Exception as exc:
            log.critical(
                "the broker did not acknowledge %d outputs of a batch (%s); "
                "stopping without acknowledging its records so they are "
                "consumed again after a restart",
                len(pending),
                exc,
            )
            raise ProduceFailed(str(exc)) from exc

    def count(self, outcome: BatchOutcome) -> None:
        """Feed one batch's counts to the metrics."""
        metrics = self.worker_app.metrics
        for topic, records in outcome.records.items():
            metrics.count_consumed(topic, records, outcome.bytes_read[topic])
        for seconds in outcome.decode_seconds:
            metrics.observe_decode_seconds(seconds)
        for attribute, events in outcome.published.items():
            version = self.worker_app.processor.versions[attribute]
            metrics.count_published(attribute, version, events)
        for attribute, events in outcome.duplicates.items():
            metrics.count_duplicates(attribute, events)
        for attribute, fields in outcome.unknown_fields.items():
            metrics.count_unknown_fields(attribute, fields)
        metrics.count_dead_letter_tally(outcome.dead_letters)
        if outcome.event_timestamps_ms:
            metrics.observe_event_lag(outcome.event_timestamps_ms)

    async def sweep(self) -> None:
        """Expire old conversations from the partitions this worker owns.

        Called by the worker on a timer, so an idle worker sweeps too. The
        expiry itself does not await, so it never interleaves with a batch's
        own state changes; only sending the tombstones does.
        """
        wa = self.worker_app
        actives = {tp.partition for tp in wa.app.assignor.assigned_actives()}
        expired = wa.state.expire(actives)
        wa.metrics.count_dedupe_expired(expired)
        try:
            await wa.state.written()
        except Exception as exc:
            # Harmless: the entries are gone from memory; a restart restores
            # them from the changelog and the next sweep expires them again.
            log.warning("dedupe state: tombstones not written (%s)", exc)


class PendingSeenEvents:
    """The dedupe state as it will be once the batch in flight is acknowledged.

    The next batch is decoded while the previous one still waits for its
    acknowledgements, before that one's digests are stored; reading them from
    its outcome keeps a conversation in both batches from publishing twice.
    """

    def __init__(self, state: SeenEvents, in_flight: BatchOutcome | None) -> None:
        self.state = state
        self.in_flight = in_flight.remember if in_flight is not None else {}

    def seen(self, conversation: bytes) -> set[bytes]:
        """Digests stored or about to be stored for a conversation."""
        pending = self.in_flight.get(conversation)
        if pending is not None:
            return set(pending[0])
        return self.state.seen(conversation)

    def remember(
        self, conversation: bytes, digests: set[bytes], partition: int
    ) -> None:
        """Store digests in the underlying state."""
        self.state.remember(conversation, digests, partition)


def _changelog_sender(app: faust.App, table: Any) -> ChangelogSender:
    """Send one message to the table's changelog through the app's producer."""

    async def send(partition: int, key: bytes, value: bytes | None) -> Any:
        # Looked up per call: the producer exists only once the app runs.
        topic = table.changelog_topic.get_topic_name()
        return await app.producer.send(topic, key, value, partition, None, None)

    return send


def _raw_record(message: Any) -> RawRecord:
    return RawRecord(
        value=message.value,
        key=message.key,
        headers=_headers(message.headers),
        source=SourcePosition(
            message.topic,
            message.partition,
            message.offset,
            int(message.timestamp * 1000) if message.timestamp else None,
        ),
    )


def _headers(headers: Any) -> list[tuple[str, bytes]]:
    if not headers:
        return []
    if isinstance(headers, dict):
        return list(headers.items())
    return [(name, value) for name, value in headers]
