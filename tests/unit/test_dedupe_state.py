from typing import Any

from stream.dedupe_state import HEADER_SIZE, TableSeenEvents, pack, unpack


class FakeTable:
    """The two things TableSeenEvents uses: ``data`` and ``send_changelog``."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.changelog: list[tuple[int, bytes, Any]] = []

    def send_changelog(self, partition: int, key: bytes, value: Any) -> Any:
        self.changelog.append((partition, key, value))
        return self.delivery

    delivery: Any = None


DIGESTS = {bytes([n]) * 16 for n in range(3)}


def test_blob_round_trip() -> None:
    blob = pack(DIGESTS, 5, 1_700_000_000_123)
    assert len(blob) == HEADER_SIZE + 3 * 16
    assert unpack(blob) == (1_700_000_000_123, 5, DIGESTS)


def test_remember_writes_store_and_changelog_to_the_given_partition() -> None:
    table = FakeTable()
    state = TableSeenEvents(table, retention_seconds=60, clock=lambda: 1000.0)

    state.remember(b"conv", set(DIGESTS), partition=7)

    assert state.seen(b"conv") == DIGESTS
    assert table.changelog == [(7, b"conv", table.data[b"conv"])]
    assert state.size() == (1, 3)


def test_expired_conversations_are_forgotten_only_in_owned_partitions() -> None:
    now = [1000.0]
    table = FakeTable()
    state = TableSeenEvents(table, retention_seconds=60, clock=lambda: now[0])
    state.remember(b"mine", set(DIGESTS), partition=1)
    state.remember(b"theirs", set(DIGESTS), partition=2)

    now[0] += 61
    assert state.seen(b"mine") == set()  # expired entries no longer suppress
    assert state.expire(active_partitions={1}) == 1

    assert b"mine" not in table.data and b"theirs" in table.data
    assert table.changelog[-1] == (1, b"mine", None)
    assert state.expired_total == 1


def test_fresh_entries_survive_a_sweep() -> None:
    table = FakeTable()
    state = TableSeenEvents(table, retention_seconds=60, clock=lambda: 1000.0)
    state.remember(b"conv", set(DIGESTS), partition=0)
    assert state.expire({0}) == 0
    assert state.seen(b"conv") == DIGESTS


def test_written_waits_for_every_changelog_write() -> None:
    import asyncio

    async def scenario() -> list[bool]:
        table = FakeTable()
        table.delivery = asyncio.get_running_loop().create_future()
        state = TableSeenEvents(table, retention_seconds=60, clock=lambda: 1000.0)
        state.remember(b"conv", set(DIGESTS), partition=0)

        waiting = asyncio.create_task(state.written())
        await asyncio.sleep(0)
        before = waiting.done()
        table.delivery.set_result("stored")
        await waiting
        return [before, waiting.done(), state.unwritten == []]

    assert asyncio.run(scenario()) == [False, True, True]
