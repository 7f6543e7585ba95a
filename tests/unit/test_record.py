"""Record-level checks: encoding, nesting, syntax, duplicates, non-finite numbers."""

from __future__ import annotations

import orjson
import pytest

from stream.record import (
    NeedsExactParse,
    RecordError,
    nesting_depth,
    parse_fast,
    parse_record,
)


def _nested(depth: int) -> bytes:
    """A record whose deepest value sits `depth` containers down, record included."""
    inner = b"[" * (depth - 1) + b"]" * (depth - 1)
    return b'{"info": {}, "junk": ' + inner + b"}"


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"a": "\xc3\x28"}', "invalid_encoding"),
        (b'{"a": "\xed\xa0\x80"}', "invalid_encoding"),  # an encoded surrogate
        (b"\xff" + b"[" * 600, "invalid_encoding"),  # encoding is checked first
        (_nested(513), "nesting_too_deep"),
        (b"[" * 600, "nesting_too_deep"),  # before invalid_json
        (b'{"a": 1 "b": 2}', "invalid_json"),
        (b'{"a": [1, 2', "invalid_json"),
        (b"", "invalid_json"),
        (b"\xef\xbb\xbf\xef\xbb\xbf{}", "invalid_json"),  # one BOM is stripped
        (b'{"a": 01}', "invalid_json"),
        (b'{"a": 1,}', "invalid_json"),
        (b'{"a": NaN, "a": 1', "invalid_json"),  # syntax before the rest
        (b'{"a": 1, "a": 2}', "duplicate_key"),
        (b'{"a": {"k": 1, "\\u006b": 2}}', "duplicate_key"),  # after unescaping
        (b'{"a": NaN, "a": 1}', "duplicate_key"),
        (b'{"a": NaN}', "non_finite_number"),
        (b'{"a": [-Infinity]}', "non_finite_number"),
    ],
)
def test_record_level_reason(raw: bytes, reason: str, exact: bool) -> None:
    with pytest.raises(RecordError) as caught:
        parse_record(raw, exact=exact)

    assert caught.value.reason == reason
    assert caught.value.message


@pytest.mark.parametrize("exact", [False, True])
def test_nesting_of_512_is_allowed(exact: bool) -> None:
    assert parse_record(_nested(512), exact=exact)["info"] == {}


@pytest.mark.parametrize(
    "raw",
    [
        b'\xef\xbb\xbf{"info": {}}',
        b'{"a": "x:y", "b": "\\u003a"}',  # escaped colons are not members
        b'{"a": "[[[[{{{{"}',
        b'{\n  "a" : 1 }',
    ],
)
def test_valid_records_parse_on_both_paths_alike(raw: bytes) -> None:
    assert parse_record(raw) == parse_record(raw, exact=True)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = '{"a": "' + "[" * 600 + '"}'

    assert nesting_depth(text) == 1
    assert parse_record(text.encode(), exact=True)["a"] == "[" * 600


def test_exact_parse_keeps_number_literals() -> None:
    value = parse_record(b'{"a": 1.50, "b": 1e3, "c": -0}', exact=True)

    assert [value[k].text for k in "abc"] == ["1.50", "1e3", "-0"]


def test_deep_nesting_does_not_exhaust_the_stack() -> None:
    with pytest.raises(RecordError) as caught:
        parse_record(b"[" * 100_000 + b"]" * 100_000)

    assert caught.value.reason == "nesting_too_deep"


@pytest.mark.parametrize("depth", [255, 511, 512, 513, 1024, 1025, 5000])
def test_the_fast_path_never_vouches_for_a_record_deeper_than_254(depth: int) -> None:
    # The fast path's nesting check is orjson refusing to write a value more
    # than 254 levels deep: any deeper record must go to the exact parser.
    with pytest.raises(NeedsExactParse):
        parse_fast(_nested(depth))


def test_orjson_writes_254_levels_and_no_more() -> None:
    # The limit parse_fast relies on (orjson is pinned; an upgrade must keep it).
    assert orjson.dumps(orjson.loads(b"[" * 254 + b"]" * 254))
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps(orjson.loads(b"[" * 255 + b"]" * 255))


def test_many_shallow_brackets_take_the_fast_path() -> None:
    raw = b'{"info": {}, "junk": [' + b",".join([b"[{}]"] * 600) + b"]}"

    assert parse_fast(raw) == parse_record(raw, exact=True)
