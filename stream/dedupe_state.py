"""The durable dedupe state: which events each conversation already published.

State lives in a faust table backed by a compacted changelog topic, one entry per
conversation (not per event): the key is the conversation id, the value a compact
blob of the 16-byte dedupe digests of its published events behind a small header.
One entry per conversation keeps both memory and changelog traffic small: a
conversation fetched again produces one changelog message per batch, not one per
event, and the per-event cost in memory is the 16 digest bytes.

Blob layout (big-endian): last update time in epoch ms (8 bytes), source
partition (2 bytes), then the digests back to back.

Entries expire ``dedupe_retention_seconds`` after their last update: a
conversation re-fetched after that republishes its events.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

from stream.dead_letters import MAX_MESSAGE_BYTES
from stream.dedupe import DIGEST_SIZE

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">QH")
HEADER_SIZE = _HEADER.size

# Hands one changelog message (partition, key, value or None for a tombstone)
# to the producer and returns the future of its delivery.
ChangelogSender = Callable[[int, bytes, bytes | None], Awaitable[Awaitable[Any]]]


def pack(digests: set[bytes], partition: int, now_ms: int) -> bytes:
    """Build the stored blob for a conversation."""
    return _HEADER.pack(now_ms, partition) + b"".join(sorted(digests))


def unpack(blob: bytes) -> tuple[int, int, set[bytes]]:
    """Split a stored blob into (last update ms, partition, digests)."""
    updated_ms, partition = _HEADER.unpack_from(blob)
    body = memoryview(blob)[HEADER_SIZE:]
    digests = {
        bytes(body[start : start + DIGEST_SIZE])
        for start in range(0, len(body), DIGEST_SIZE)
    }
    return updated_ms, partition, digests


class TableSeenEvents:
    """The dedupe state over a faust table, written with explicit partitions.

    Faust picks a changelog partition from the "current event"; inside a batch
    that is whichever event arrived last, possibly of another partition. So this
    class writes the table's store and its changelog itself, always to the
    partition the conversation was read from.

    Changelog messages go straight to the producer. faust's own path queues them
    in a buffer that a separate task sends one at a time, and its fetch loop
    stops reading input while that buffer holds over 100 messages, which every
    batch that updates a few hundred conversations would fill.
    """

    def __init__(
        self,
        table: Any,
        retention_seconds: int,
        send_changelog: ChangelogSender,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table = table
        self.retention_ms = retention_seconds * 1000
        self.send_changelog = send_changelog
        self.clock = clock
        self.expired_total = 0
        # changelog messages (partition, key, value) not yet handed to the producer
        self.unwritten: list[tuple[int, bytes, bytes | None]] = []

    @property
    def store(self) -> Any:
        """The table's local key/value store (a dict-like for memory://)."""
        return self.table.data

    def seen(self, conversation: bytes) -> set[bytes]:
        """Digests published for a conversation, empty when unknown or expired."""
        blob = self.store.get(conversation)
        if not blob:
            return set()
        updated_ms, _, digests = unpack(blob)
        if self._expired(updated_ms, self._now_ms()):
            return set()
        return digests

    def remember(
        self, conversation: bytes, digests: set[bytes], partition: int
    ) -> None:
        """Store a conversation's digests locally and in the changelog."""
        blob = pack(digests, partition, self._now_ms())
        room = MAX_MESSAGE_BYTES - len(conversation)
        if len(blob) > room:
            # Kafka refuses a changelog message over about 1 MB, which would
            # stop the worker at every redelivery. Over 60,000 events in one
            # conversation: keep what fits; the rest may be published again.
            kept = max(room - HEADER_SIZE, 0) // DIGEST_SIZE
            log.warning(
                "dedupe state: conversation %r has %d published events, keeping %d",
                conversation[:80],
                len(digests),
                kept,
            )
            blob = blob[: HEADER_SIZE + kept * DIGEST_SIZE]
        self.store[conversation] = blob
        self.unwritten.append((partition, conversation, blob))

    async def written(self) -> None:
        """Send every changelog change made so far; wait until the broker has them.

        The worker acknowledges a batch's records only after this: if its
        partition then moves to another worker (whose faust may discard this
        worker's last commit), the new owner restores these digests and does
        not publish the events again.
        """
        changes, self.unwritten = self.unwritten, []
        deliveries = [
            await self.send_changelog(partition, key, value)
            for partition, key, value in changes
        ]
        if deliveries:
            await asyncio.gather(*deliveries)

    def size(self) -> tuple[int, int]:
        """(conversations, digests) held in memory, for the metrics."""
        conversations = 0
        digests = 0
        for blob in self.store.values():
            conversations += 1
            digests += (len(blob) - HEADER_SIZE) // DIGEST_SIZE
        return conversations, digests

    def expire(self, active_partitions: set[int]) -> int:
        """Forget conversations not updated within the retention; return how many.

        Only partitions this worker owns are swept: a standby copy is cleaned by
        the tombstone its owner writes to the changelog. The tombstones go out
        with the next ``written()``.
        """
        now_ms = self._now_ms()
        expired = []
        for conversation, blob in self.store.items():
            updated_ms, partition = _HEADER.unpack_from(blob)
            if partition in active_partitions and self._expired(updated_ms, now_ms):
                expired.append((conversation, partition))

        for conversation, partition in expired:
            del self.store[conversation]
            self.unwritten.append((partition, conversation, None))
        if expired:
            log.info("dedupe state: expired %d conversations", len(expired))
        self.expired_total += len(expired)
        return len(expired)

    def forget_unowned(self, owned_partitions: set[int]) -> int:
        """Drop the entries of partitions this worker no longer owns; return how many.

        Called with the whole new assignment after a rebalance. faust's memory
        store forgets only entries it restored from the changelog; the ones
        this worker wrote itself would otherwise stay in memory for good, and
        never expire, since a sweep covers owned partitions only. If such a
        partition comes back, its entries are restored from the changelog.
        """
        unowned = [
            conversation
            for conversation, blob in self.store.items()
            if _HEADER.unpack_from(blob)[1] not in owned_partitions
        ]
        for conversation in unowned:
            del self.store[conversation]
        if unowned:
            log.info(
                "dedupe state: let go of %d conversations of partitions now owned "
                "by other workers",
                len(unowned),
            )
        return len(unowned)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _expired(self, updated_ms: int, now_ms: int) -> bool:
        return now_ms - updated_ms > self.retention_ms
