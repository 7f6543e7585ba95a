from stream.settings import from_env
from stream.topics import KEEP_FOREVER_MS, SEVEN_DAYS_MS, TopicPlan, planned_topics


def test_plan_covers_every_topic_with_its_retention() -> None:
    settings = from_env({"ES_TOPIC_PREFIX": "x."})
    topics = {t.name: t for t in planned_topics(settings, TopicPlan(partitions=3))}

    assert set(topics) == {
        *settings.all_topic_names(),
        "x.conversations-by-conversation",
    }
    assert all(t.num_partitions == 3 for t in topics.values())
    retention = {
        name: int(t.topic_configs["retention.ms"]) for name, t in topics.items()
    }
    assert retention["x.leads"] == KEEP_FOREVER_MS
    assert retention["x.conversations"] == SEVEN_DAYS_MS
    assert retention["x.conversations-by-conversation"] == SEVEN_DAYS_MS
    assert retention["x.deadLetters"] == SEVEN_DAYS_MS


def test_plan_takes_the_given_retentions() -> None:
    settings = from_env({})
    plan = TopicPlan(retention_ms=1, input_retention_ms=2, dead_letter_retention_ms=3)
    retention = {
        t.name: t.topic_configs["retention.ms"] for t in planned_topics(settings, plan)
    }
    assert retention["purchases"] == "1"
    assert retention["conversations"] == "2"
    assert retention["deadLetters"] == "3"


def test_refusals_other_than_already_exists_are_errors() -> None:
    import pytest

    from stream.topics import TopicCreationRefused, _raise_for_refusals

    _raise_for_refusals(
        [
            {"topic": "a", "error_code": 0, "error_message": None},
            {"topic": "b", "error_code": 36, "error_message": "exists"},
        ]
    )
    with pytest.raises(TopicCreationRefused, match="c: only 1 broker"):
        _raise_for_refusals(
            [{"topic": "c", "error_code": 38, "error_message": "only 1 broker"}]
        )
