import base64
import json

from stream.dead_letters import SourcePosition, build_dead_letter
from stream.decoder import decode_record

SOURCE = SourcePosition("conversations", 3, 41, 1_700_000_000_000)


def test_record_level_dead_letter_keeps_the_raw_bytes() -> None:
    raw = b'{"info": {"conversationId": "c-1"}, "sdes": {"events": [}'
    result = decode_record(raw, 2)
    (letter,) = result.dead_letters

    message = build_dead_letter(letter, SOURCE, raw, 2, b"k")
    body = json.loads(message.value)

    assert body["reason"] == "invalid_json"
    assert body["level"] == "record"
    assert body["message"]
    assert body["source"] == {
        "topic": "conversations",
        "partition": 3,
        "offset": 41,
        "timestamp": 1_700_000_000_000,
    }
    assert base64.b64decode(body["rawRecord"]) == raw
    assert "rawEvent" not in body
    assert message.key == b"k"
    assert dict(message.headers) == {
        "deadLetterReason": b"invalid_json",
        "deadLetterLevel": b"record",
    }


def test_event_level_dead_letter_carries_the_raw_event_and_field() -> None:
    event = {
        "sdeType": "LEAD",
        "serverTimeStamp": 1718012345678,
        "lead": {"lead": {"value": "lots"}},
    }
    raw = json.dumps(
        {"info": {"conversationId": "c-2"}, "unAuthSdes": {"events": [event]}}
    ).encode()
    (letter,) = decode_record(raw, 2).dead_letters

    message = build_dead_letter(letter, SOURCE, raw, 2, None)
    body = json.loads(message.value)

    assert (body["reason"], body["field"], body["sdeType"]) == (
        "type_mismatch",
        "lead.value",
        "LEAD",
    )
    assert body["authenticated"] is False
    assert body["rawEvent"] == event
    assert body["conversationId"] == "c-2"
    assert message.key == b"c-2"


def test_numbers_too_large_for_a_double_keep_their_text() -> None:
    raw = (
        b'{"info": {"conversationId": "c-3"}, "unAuthSdes": {"events": ['
        b'{"sdeType": "LEAD", "serverTimeStamp": 1718012345678,'
        b' "lead": {"lead": {"value": 1e999}}}]}}'
    )
    (letter,) = decode_record(raw, 2).dead_letters
    assert letter.reason == "out_of_range"

    body = json.loads(build_dead_letter(letter, SOURCE, raw, 2, None).value)
    assert body["rawEvent"]["lead"]["lead"]["value"] == "1e999"
