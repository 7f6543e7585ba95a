"""The whole sample corpus through decode_record, against the expected files."""

from __future__ import annotations

import pytest

from stream.decoder import decode_record
from stream.dedupe import Deduplicator
from tests.unit.conftest import (
    all_corpus_records,
    as_multiset,
    edge_expected,
    edge_records,
    sample_expected,
    sample_records,
)

EDGE = edge_expected()


@pytest.mark.parametrize("version", [1, 2])
def test_sample_file_emits_the_expected_events(version: int) -> None:
    records = sample_records(version)
    expected = sample_expected(version)
    assert len(records) == len(expected)

    deduplicator = Deduplicator()
    for raw, want in zip(records, expected, strict=True):
        result = decode_record(raw, version)
        emitted = [event.to_json() for event in deduplicator.distinct(result.events)]

        assert as_multiset(emitted) == as_multiset(want["emit"]), want["line"]
        assert [d.to_json() for d in result.dead_letters] == want["deadLetters"]
        assert result.conversation_id == want["conversationId"]


@pytest.mark.parametrize("version", [1, 2])
def test_sample_file_is_read_the_same_with_the_version_inferred(version: int) -> None:
    for raw in sample_records(version):
        given = decode_record(raw, version)
        inferred = decode_record(raw, None)

        assert inferred.api_version == version
        assert inferred.events == given.events


@pytest.mark.parametrize("name", sorted(EDGE))
def test_edge_file_has_its_expected_outcome(name: str) -> None:
    want = EDGE[name]
    deduplicator = Deduplicator()
    per_record = []
    dead_letters = []
    for raw in edge_records(name):
        result = decode_record(raw, want["apiVersion"])
        per_record.append([e.to_json() for e in deduplicator.distinct(result.events)])
        dead_letters += [d.to_json() for d in result.dead_letters]

    emitted = [event for events in per_record for event in events]
    assert as_multiset(emitted) == as_multiset(want["emit"])
    assert as_multiset(dead_letters) == as_multiset(want["deadLetters"])
    if "perLine" in want:
        assert [as_multiset(e) for e in per_record] == [
            as_multiset(e) for e in want["perLine"]
        ]


@pytest.mark.parametrize(
    ("label", "raw", "version"), all_corpus_records(), ids=lambda v: str(v)[:60]
)
def test_event_dead_letters_carry_what_the_queue_needs(
    label: str, raw: bytes, version: int
) -> None:
    for dead_letter in decode_record(raw, version).dead_letters:
        assert dead_letter.message, label
        if dead_letter.level == "event":
            assert dead_letter.raw_event is not None
            assert dead_letter.conversation_id
