"""The metrics container: names, labels, zero series and counts after calls."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from stream.attributes import ATTRIBUTES
from stream.events import EVENT_REASONS, RECORD_REASONS, DeadLetter
from stream.metrics import Metrics

PREFIX = "engagement_stream_"


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry, input_topics=("in.conversations",))


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(PREFIX + name, labels)


def sample_names(registry: CollectorRegistry) -> set[str]:
    return {sample.name for family in registry.collect() for sample in family.samples}


def test_every_metric_is_prefixed_and_counters_end_in_total(registry, metrics):
    families = list(registry.collect())

    assert families
    for family in families:
        assert family.name.startswith(PREFIX), family.name
        if family.type == "counter":
            assert any(s.name.endswith("_total") for s in family.samples)


@pytest.mark.parametrize(
    "name",
    [
        "records_consumed_total",
        "consumed_bytes_total",
        "events_published_total",
        "duplicates_suppressed_total",
        "unknown_fields_dropped_total",
        "dead_letters_total",
        "decode_duration_seconds_count",
        "produce_ack_duration_seconds_count",
        "event_lag_seconds_count",
        "rebalances_total",
        "dedupe_keys",
        "dedupe_expirations_total",
        "build_info",
    ],
)
def test_metric_exists_before_any_call(registry, metrics, name):
    assert PREFIX + name in sample_names(registry)


def test_zero_series_exist_for_every_attribute(registry, metrics):
    for attribute in ATTRIBUTES:
        published = {"attribute": attribute, "schema_version": "1"}
        assert value(registry, "events_published_total", **published) == 0
        for name in (
            "duplicates_suppressed_total",
            "unknown_fields_dropped_total",
        ):
            assert value(registry, name, attribute=attribute) == 0


def test_zero_series_exist_for_every_dead_letter_reason(registry, metrics):
    for reason in RECORD_REASONS:
        assert value(registry, "dead_letters_total", level="record", reason=reason) == 0
    for reason in EVENT_REASONS:
        assert value(registry, "dead_letters_total", level="event", reason=reason) == 0


def test_zero_series_exist_for_input_topics(registry, metrics):
    assert value(registry, "records_consumed_total", topic="in.conversations") == 0
    assert value(registry, "consumed_bytes_total", topic="in.conversations") == 0


def test_pinned_schema_version_is_the_zero_series(registry):
    Metrics(registry, published_versions={"lead": 3})

    assert (
        value(registry, "events_published_total", attribute="lead", schema_version="3")
        == 0
    )
    assert (
        value(registry, "events_published_total", attribute="lead", schema_version="1")
        is None
    )


def test_count_consumed_adds_records_and_bytes(registry, metrics):
    metrics.count_consumed("in.conversations", 3, 1200)
    metrics.count_consumed("in.conversations", 2, 800)

    assert value(registry, "records_consumed_total", topic="in.conversations") == 5
    assert value(registry, "consumed_bytes_total", topic="in.conversations") == 2000


def test_count_published_by_attribute_and_version(registry, metrics):
    metrics.count_published("cartStatus", 1, 4)
    metrics.count_published("cartStatus", 2)

    labels = {"attribute": "cartStatus"}
    assert value(registry, "events_published_total", schema_version="1", **labels) == 4
    assert value(registry, "events_published_total", schema_version="2", **labels) == 1
    assert (
        value(registry, "events_published_total", attribute="lead", schema_version="1")
        == 0
    )


def test_duplicates_and_unknown_fields(registry, metrics):
    metrics.count_duplicates("purchase", 2)
    metrics.count_unknown_fields("lead", 3)

    assert value(registry, "duplicates_suppressed_total", attribute="purchase") == 2
    assert value(registry, "unknown_fields_dropped_total", attribute="lead") == 3


def test_dead_letters_are_counted_by_level_and_reason(registry, metrics):
    letters = [
        DeadLetter("record", "invalid_json", "expected JSON"),
        DeadLetter("event", "type_mismatch", "expected a number", "LEAD", "lead.value"),
        DeadLetter("event", "type_mismatch", "expected a number", "LEAD", "lead.value"),
    ]

    metrics.count_dead_letters(letters)

    assert (
        value(registry, "dead_letters_total", level="record", reason="invalid_json")
        == 1
    )
    assert (
        value(registry, "dead_letters_total", level="event", reason="type_mismatch")
        == 2
    )
    assert (
        value(registry, "dead_letters_total", level="event", reason="out_of_range") == 0
    )


def test_latency_histograms_put_observations_in_buckets(registry, metrics):
    metrics.observe_decode_seconds(0.0002)
    metrics.observe_produce_ack_seconds(0.003)

    decode = "decode_duration_seconds_bucket"
    assert value(registry, decode, le="0.0001") == 0
    assert value(registry, decode, le="0.00025") == 1
    assert value(registry, "produce_ack_duration_seconds_bucket", le="0.0025") == 0
    assert value(registry, "produce_ack_duration_seconds_bucket", le="0.005") == 1
    assert value(registry, "produce_ack_duration_seconds_sum") == pytest.approx(0.003)


def test_event_lag_is_now_minus_server_timestamp(registry, metrics):
    now = 1_700_000_000.0
    two_hours_ago_ms = int((now - 7200) * 1000)
    from_the_future_ms = int((now + 5) * 1000)

    metrics.observe_event_lag([two_hours_ago_ms, from_the_future_ms], now=now)

    assert value(registry, "event_lag_seconds_count") == 2
    assert value(registry, "event_lag_seconds_sum") == pytest.approx(7200)
    assert value(registry, "event_lag_seconds_bucket", le="1.0") == 1
    assert value(registry, "event_lag_seconds_bucket", le="3600.0") == 1
    assert value(registry, "event_lag_seconds_bucket", le="10800.0") == 2
    assert value(registry, "event_lag_seconds_bucket", le="+Inf") == 2


def test_assignment_creates_and_removes_partition_series(registry, metrics):
    metrics.on_assigned([("in", 0), ("in", 1)])
    metrics.set_consumer_lag({("in", 0): 12, ("in", 1): 0})
    metrics.set_committed({("in", 0): 340})
    metrics.on_assigned([("in", 1), ("in", 2)])

    assert value(registry, "rebalances_total") == 2
    assert value(registry, "consumer_lag_messages", topic="in", partition="0") is None
    assert value(registry, "committed_offset", topic="in", partition="0") is None
    assert value(registry, "consumer_lag_messages", topic="in", partition="1") == 0
    assert value(registry, "consumer_lag_messages", topic="in", partition="2") == 0
    assert value(registry, "committed_offset", topic="in", partition="2") == 0


def test_lag_and_committed_offsets_are_set(registry, metrics):
    metrics.on_assigned([("in", 0)])

    metrics.set_consumer_lag({("in", 0): 12})
    metrics.set_committed({("in", 0): 340})
    metrics.set_consumer_lag({("in", 0): 7})

    assert value(registry, "consumer_lag_messages", topic="in", partition="0") == 7
    assert value(registry, "committed_offset", topic="in", partition="0") == 340


def test_dedupe_state_size_and_expirations(registry, metrics):
    metrics.set_dedupe_keys(1500)
    metrics.count_dedupe_expired(20)
    metrics.count_dedupe_expired(5)
    metrics.set_dedupe_keys(1480)

    assert value(registry, "dedupe_keys") == 1480
    assert value(registry, "dedupe_expirations_total") == 25


def test_build_info_names_library_versions(registry, metrics):
    text = generate_latest(registry).decode()
    line = next(x for x in text.splitlines() if x.startswith(PREFIX + "build_info{"))

    for label in ("version=", "faust=", "aiokafka=", "fastavro=", "python="):
        assert label in line
    assert 'faust="0.15.3"' in line
    assert line.endswith(" 1.0")


def test_two_containers_do_not_share_a_registry():
    first, second = CollectorRegistry(), CollectorRegistry()

    Metrics(first).count_published("lead", 1, 2)
    Metrics(second)

    labels = {"attribute": "lead", "schema_version": "1"}
    assert value(first, "events_published_total", **labels) == 2
    assert value(second, "events_published_total", **labels) == 0
