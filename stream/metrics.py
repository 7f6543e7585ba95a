"""Prometheus metrics of the worker, in one container built against a registry.

Every metric is named ``engagement_stream_*`` and measured in base units
(seconds, bytes, messages). Label sets are small and closed: input topics,
attribute keys, published schema versions, dead letter levels and reasons, and
the partitions currently assigned. Every label value known at start-up is
created with a zero value, so a rate over an idle attribute reads 0 instead of
"no data" and alerts that compare series see them.

The worker calls the ``count_*``, ``observe_*`` and ``set_*`` methods once per
batch with totals where it can, rather than once per event.
"""

from __future__ import annotations

import platform
import time
from collections import Counter as Tally
from collections.abc import Collection, Iterable, Mapping
from importlib import metadata

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from stream import __version__
from stream.attributes import ATTRIBUTES
from stream.events import (
    EVENT_LEVEL,
    EVENT_REASONS,
    RECORD_LEVEL,
    RECORD_REASONS,
    DeadLetter,
)
from stream.settings import DEFAULT_INPUT_TOPIC

PREFIX = "engagement_stream"

# A topic partition as aiokafka and faust name it; their TopicPartition
# named tuples are (topic, partition) and fit this type.
Partition = tuple[str, int]

# Decoding one record takes tens of microseconds to a few milliseconds; the
# upper buckets catch pathological records (deep nesting, 50 000-char values).
DECODE_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)
# A produce acknowledgement is a broker round trip: about a millisecond on a
# healthy cluster, seconds while a leader moves.
PRODUCE_ACK_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
_MINUTE = 60.0
_HOUR = 3600.0
_DAY = 24 * _HOUR
# LivePerson delivers conversation records when a conversation closes or is
# exported, so an event is often hours and sometimes days old when published.
EVENT_LAG_BUCKETS = (
    1.0,
    5.0,
    15.0,
    _MINUTE,
    5 * _MINUTE,
    15 * _MINUTE,
    _HOUR,
    3 * _HOUR,
    6 * _HOUR,
    12 * _HOUR,
    _DAY,
    2 * _DAY,
    7 * _DAY,
    30 * _DAY,
)


class Metrics:
    """Every metric the worker exposes, registered on one registry.

    Args:
        registry: where the metrics are registered; tests pass a fresh
            ``CollectorRegistry()``, the worker the default ``REGISTRY`` or
            its own.
        input_topics: the input topic names (prefixed), created up front.
        published_versions: attribute key -> schema version it publishes;
            attributes not named publish version 1.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        input_topics: Collection[str] = (DEFAULT_INPUT_TOPIC,),
        published_versions: Mapping[str, int] | None = None,
    ) -> None:
        self.registry = registry
        self._assigned: set[Partition] = set()
        self._create_input(registry)
        self._create_output(registry)
        self._create_latency(registry)
        self._create_consumer(registry)
        self._create_dedupe(registry)
        self._create_build_info(registry)

        self._zero_input(input_topics)
        self._zero_output(published_versions or {})

    # --- input ---------------------------------------------------------------

    def count_consumed(self, topic: str, records: int, size_bytes: int) -> None:
        """Count raw records read from an input topic, once per batch.

        Args:
            topic: the input topic the batch came from.
            records: how many records the batch held.
            size_bytes: their value sizes added up (keys and headers excluded).
        """
        self.records_consumed.labels(topic=topic).inc(records)
        self.consumed_bytes.labels(topic=topic).inc(size_bytes)

    def observe_decode_seconds(self, seconds: float) -> None:
        """Record how long decoding one raw record took."""
        self.decode_duration.observe(seconds)

    # --- output --------------------------------------------------------------

    def count_published(self, attribute: str, version: int, events: int = 1) -> None:
        """Count attribute events produced to their typed topic.

        Args:
            attribute: the attribute key, e.g. "cartStatus".
            version: the schema version the events were written with.
            events: how many events of this attribute and version.
        """
        labels = self.events_published.labels(
            attribute=attribute, schema_version=str(version)
        )
        labels.inc(events)

    def count_duplicates(self, attribute: str, events: int = 1) -> None:
        """Count events not published because the dedupe state had seen them."""
        self.duplicates_suppressed.labels(attribute=attribute).inc(events)

    def count_unknown_fields(self, attribute: str, fields: int = 1) -> None:
        """Count payload fields the attribute's schema does not know, dropped."""
        self.unknown_fields_dropped.labels(attribute=attribute).inc(fields)

    def count_dead_letters(self, dead_letters: Iterable[DeadLetter]) -> None:
        """Count a batch of dead letters by level and reason."""
        self.count_dead_letter_tally(
            Tally((letter.level, letter.reason) for letter in dead_letters)
        )

    def count_dead_letter_tally(self, tally: Mapping[tuple[str, str], int]) -> None:
        """Count dead letters already tallied as (level, reason) -> number."""
        for (level, reason), count in tally.items():
            self.dead_letters.labels(level=level, reason=reason).inc(count)

    def observe_produce_ack_seconds(self, seconds: float) -> None:
        """Record the time from sending a message to the broker's acknowledgement."""
        self.produce_ack_duration.observe(seconds)

    def observe_event_lag(
        self, server_timestamps_ms: Iterable[int], now: float | None = None
    ) -> None:
        """Record how old published events are: now minus their serverTimeStamp.

        Args:
            server_timestamps_ms: the events' serverTimeStamp, epoch ms UTC.
            now: the publication time, epoch seconds; defaults to the clock.
        """
        now = time.time() if now is None else now
        for timestamp_ms in server_timestamps_ms:
            # Clocks disagree by a little; a negative age is noise, not news.
            self.event_lag.observe(max(0.0, now - timestamp_ms / 1000))

    # --- consumer group ------------------------------------------------------

    def on_assigned(self, partitions: Iterable[Partition]) -> None:
        """Count a rebalance and track the partitions now assigned.

        Series of revoked partitions are removed so that a dashboard summing
        lag over the group does not count a partition twice.
        """
        self.rebalances.inc()

        assigned = {(topic, number) for topic, number in partitions}
        for topic, number in self._assigned - assigned:
            self.consumer_lag.remove(topic, str(number))
            self.committed_offset.remove(topic, str(number))
        for topic, number in assigned - self._assigned:
            self.consumer_lag.labels(topic=topic, partition=str(number))
            self.committed_offset.labels(topic=topic, partition=str(number))

        self._assigned = assigned

    def set_consumer_lag(self, lags: Mapping[Partition, int]) -> None:
        """Set each assigned partition's lag: high watermark minus position."""
        for (topic, number), lag in lags.items():
            self.consumer_lag.labels(topic=topic, partition=str(number)).set(lag)

    def set_committed(self, offsets: Mapping[Partition, int]) -> None:
        """Set each partition's last committed offset."""
        for (topic, number), offset in offsets.items():
            labels = self.committed_offset.labels(topic=topic, partition=str(number))
            labels.set(offset)

    # --- dedupe state --------------------------------------------------------

    def set_dedupe_keys(self, keys: int) -> None:
        """Set how many event keys the dedupe state holds."""
        self.dedupe_keys.set(keys)

    def count_dedupe_expired(self, keys: int) -> None:
        """Count dedupe keys dropped because their retention ran out."""
        self.dedupe_expirations.inc(keys)

    # --- creation ------------------------------------------------------------

    def _create_input(self, registry: CollectorRegistry) -> None:
        self.records_consumed = Counter(
            f"{PREFIX}_records_consumed",
            "Raw conversation records read from an input topic.",
            ["topic"],
            registry=registry,
        )
        self.consumed_bytes = Counter(
            f"{PREFIX}_consumed_bytes",
            "Bytes of raw record values read from an input topic.",
            ["topic"],
            registry=registry,
        )
        self.decode_duration = Histogram(
            f"{PREFIX}_decode_duration_seconds",
            "Time to decode one raw record into attribute events.",
            buckets=DECODE_BUCKETS,
            registry=registry,
        )

    def _create_output(self, registry: CollectorRegistry) -> None:
        self.events_published = Counter(
            f"{PREFIX}_events_published",
            "Attribute events produced to their typed topic.",
            ["attribute", "schema_version"],
            registry=registry,
        )
        self.duplicates_suppressed = Counter(
            f"{PREFIX}_duplicates_suppressed",
            "Attribute events not published because they were seen before.",
            ["attribute"],
            registry=registry,
        )
        self.unknown_fields_dropped = Counter(
            f"{PREFIX}_unknown_fields_dropped",
            "Attribute payload fields unknown to the schema, dropped.",
            ["attribute"],
            registry=registry,
        )
        self.dead_letters = Counter(
            f"{PREFIX}_dead_letters",
            "Records or events sent to the dead letter queue.",
            ["level", "reason"],
            registry=registry,
        )

    def _create_latency(self, registry: CollectorRegistry) -> None:
        self.produce_ack_duration = Histogram(
            f"{PREFIX}_produce_ack_duration_seconds",
            "Time from sending a message to the broker's acknowledgement.",
            buckets=PRODUCE_ACK_BUCKETS,
            registry=registry,
        )
        self.event_lag = Histogram(
            f"{PREFIX}_event_lag_seconds",
            "Age of an attribute event when published: now minus serverTimeStamp.",
            buckets=EVENT_LAG_BUCKETS,
            registry=registry,
        )

    def _create_consumer(self, registry: CollectorRegistry) -> None:
        self.consumer_lag = Gauge(
            f"{PREFIX}_consumer_lag_messages",
            "Messages between an assigned partition's high watermark and position.",
            ["topic", "partition"],
            registry=registry,
        )
        self.committed_offset = Gauge(
            f"{PREFIX}_committed_offset",
            "Last offset committed for an assigned partition.",
            ["topic", "partition"],
            registry=registry,
        )
        self.rebalances = Counter(
            f"{PREFIX}_rebalances",
            "Partition assignments this worker received.",
            registry=registry,
        )

    def _create_dedupe(self, registry: CollectorRegistry) -> None:
        self.dedupe_keys = Gauge(
            f"{PREFIX}_dedupe_keys",
            "Event keys held in the dedupe state.",
            registry=registry,
        )
        self.dedupe_expirations = Counter(
            f"{PREFIX}_dedupe_expirations",
            "Dedupe keys dropped because their retention ran out.",
            registry=registry,
        )

    def _create_build_info(self, registry: CollectorRegistry) -> None:
        self.build = Info(
            f"{PREFIX}_build",
            "Versions of the service and the libraries it runs on.",
            registry=registry,
        )
        self.build.info(build_versions())

    # --- zero series ---------------------------------------------------------

    def _zero_input(self, input_topics: Collection[str]) -> None:
        for topic in input_topics:
            self.records_consumed.labels(topic=topic)
            self.consumed_bytes.labels(topic=topic)

    def _zero_output(self, published_versions: Mapping[str, int]) -> None:
        for attribute in ATTRIBUTES:
            version = published_versions.get(attribute, 1)
            self.events_published.labels(
                attribute=attribute, schema_version=str(version)
            )
            self.duplicates_suppressed.labels(attribute=attribute)
            self.unknown_fields_dropped.labels(attribute=attribute)

        for reason in RECORD_REASONS:
            self.dead_letters.labels(level=RECORD_LEVEL, reason=reason)
        for reason in EVENT_REASONS:
            self.dead_letters.labels(level=EVENT_LEVEL, reason=reason)


def build_versions() -> dict[str, str]:
    """The service's version and those of the libraries that shape its output."""
    return {
        "version": __version__,
        "faust": _installed("faust-streaming"),
        "aiokafka": _installed("aiokafka"),
        "fastavro": _installed("fastavro"),
        "python": platform.python_version(),
    }


def _installed(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"
