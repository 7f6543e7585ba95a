import asyncio
from typing import Any

import pytest

from stream.dedupe_state import HEADER_SIZE, TableSeenEvents, pack, unpack


class FakeTable:
    """What TableSeenEvents uses of a faust table: its ``data``."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}


class FakeChangelog:
    """A changelog producer: records each message, delivers when told to."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, bytes, bytes | None]] = []
        self.delivery: asyncio.Future[Any] | None = None

    async def send(self, partition: int, key: bytes, value: bytes | None) -> Any:
        self.sent.append((partition, key, value))
        if self.delivery is not None:
            return self.delivery
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result("stored")
        return done


def new_state(
    clock: Any = lambda: 1000.0,
) -> tuple[TableSeenEvents, FakeTable, FakeChangelog]:
    """A state over a fake table and changelog, with the given clock."""
    table = FakeTable()
    changelog = FakeChangelog()
    state = TableSeenEvents(table, 60, changelog.send, clock=clock)
    return state, table, changelog


DIGESTS = {bytes([n]) * 16 for n in range(3)}


def test_blob_round_trip() -> None:
    blob = pack(DIGESTS, 5, 1_700_000_000_123)
    assert len(blob) == HEADER_SIZE + 3 * 16
    assert unpack(blob) == (1_700_000_000_123, 5, DIGESTS)


def test_remember_writes_store_and_changelog_to_the_given_partition() -> None:
    state, table, changelog = new_state()

    state.remember(b"conv", set(DIGESTS), partition=7)
    assert state.seen(b"conv") == DIGESTS
    assert changelog.sent == []  # sent by written(), not by remember()

    asyncio.run(state.written())
    assert changelog.sent == [(7, b"conv", table.data[b"conv"])]
    assert state.size() == (1, 3)


def test_expired_conversations_are_forgotten_only_in_owned_partitions() -> None:
    now = [1000.0]
    state, table, changelog = new_state(clock=lambda: now[0])
    state.remember(b"mine", set(DIGESTS), partition=1)
    state.remember(b"theirs", set(DIGESTS), partition=2)
    asyncio.run(state.written())

    now[0] += 61
    assert state.seen(b"mine") == set()  # expired entries no longer suppress
    assert state.expire(active_partitions={1}) == 1
    asyncio.run(state.written())

    assert b"mine" not in table.data and b"theirs" in table.data
    assert changelog.sent[-1] == (1, b"mine", None)
    assert len(changelog.sent) == 3
    assert state.expired_total == 1


def test_fresh_entries_survive_a_sweep() -> None:
    state, _, _ = new_state()
    state.remember(b"conv", set(DIGESTS), partition=0)
    assert state.expire({0}) == 0
    assert state.seen(b"conv") == DIGESTS


def test_written_waits_for_every_changelog_write() -> None:
    async def scenario() -> list[object]:
        state, _, changelog = new_state()
        changelog.delivery = asyncio.get_running_loop().create_future()
        state.remember(b"conv", set(DIGESTS), partition=0)

        waiting = asyncio.create_task(state.written())
        await asyncio.sleep(0)
        before = waiting.done()
        changelog.delivery.set_result("stored")
        await waiting
        return [before, waiting.done(), state.unwritten, len(changelog.sent)]

    assert asyncio.run(scenario()) == [False, True, [], 1]


def test_a_failed_changelog_write_fails_written() -> None:
    async def scenario() -> None:
        state, _, changelog = new_state()
        changelog.delivery = asyncio.get_running_loop().create_future()
        changelog.delivery.set_exception(RuntimeError("not stored"))
        state.remember(b"conv", set(DIGESTS), partition=0)
        await state.written()

    with pytest.raises(RuntimeError, match="not stored"):
        asyncio.run(scenario())


def test_entries_of_partitions_owned_elsewhere_are_let_go() -> None:
    state, table, _ = new_state()
    state.remember(b"kept", set(DIGESTS), partition=1)
    state.remember(b"moved", set(DIGESTS), partition=2)
    state.remember(b"moved too", set(DIGESTS), partition=5)

    assert state.forget_unowned({0, 1}) == 2

    assert set(table.data) == {b"kept"}
    assert state.seen(b"kept") == DIGESTS
    assert state.forget_unowned({0, 1}) == 0
