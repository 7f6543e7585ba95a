"""Inputs found by adversarial testing: each once broke the decoder or its outputs."""

from __future__ import annotations

import pytest

from stream import decoder

CONVERSATION = "c0ffee00-0000-4000-8000-00000000adv1"
LEAD = (
    '{"sdeType":"LEAD","lead":{"lead":{"topic":"t"},"serverTimeStamp":1718012345678}}'
)


def _outcome(raw: bytes, *, exact: bool) -> tuple[list[object], list[object]]:
    if exact:
        result = decoder._decode(raw, 2, exact=True)
    else:
        result = decoder.decode_record(raw, 2)
    return (
        [event.to_json() for event in result.events],
        [dead_letter.to_json() for dead_letter in result.dead_letters],
    )


@pytest.mark.parametrize("depth", [254, 255, 300, 400, 500])
def test_deep_but_allowed_junk_decodes_on_the_fast_path(depth: int) -> None:
    # Few enough brackets for the fast path, but deeper than orjson will
    # serialize again (its limit is 254): the record must still decode.
    junk = "[" * depth + "]" * depth
    raw = (
        f'{{"info":{{"conversationId":"{CONVERSATION}"}},"junk":{junk},'
        f'"unAuthSdes":{{"events":[{LEAD}]}}}}'
    ).encode()

    events, dead_letters = _outcome(raw, exact=False)

    assert (events, dead_letters) == _outcome(raw, exact=True)
    assert dead_letters == []
    assert len(events) == 1
