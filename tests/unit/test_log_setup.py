import logging

from stream.log_setup import RepeatFilter


def record(name: str, msg: str) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, None, None)


def test_library_repeats_are_held_back_within_the_window_and_counted() -> None:
    now = [0.0]
    repeat = RepeatFilter(window_seconds=30, clock=lambda: now[0])

    assert repeat.filter(record("aiokafka.conn", "Unable connect to %s"))
    assert not repeat.filter(record("aiokafka.conn", "Unable connect to %s"))
    assert not repeat.filter(record("aiokafka.conn", "Unable connect to %s"))
    assert repeat.filter(record("aiokafka.conn", "Another message"))

    now[0] = 31.0
    again = record("aiokafka.conn", "Unable connect to %s")
    assert repeat.filter(again)
    assert again.msg == "Unable connect to %s [2 more like this in the last window]"


def test_our_own_messages_always_pass() -> None:
    repeat = RepeatFilter(window_seconds=30, clock=lambda: 0.0)
    for _ in range(3):
        assert repeat.filter(record("stream.worker", "no answer from Kafka"))
