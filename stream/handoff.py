"""Fetched messages on their way from the fetch loop to the agent, in batches.

faust's fetch loop hands messages to an agent one at a time, through a channel
queue, with two asyncio tasks per message; for a worker that decodes a record
in a few dozen microseconds that hand-off cost more than the decode. The
worker's consumer puts whole fetched batches here instead, and the agent takes
them out up to its batch size.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

# Fetched batches held before the fetch loop waits: with faust's default of up
# to 1,000 records per fetch, a few thousand records.
MAX_WAITING_BATCHES = 4


class Handoff:
    """A bounded queue of message batches with a batch-size-aware ``take``."""

    def __init__(self, max_batches: int = MAX_WAITING_BATCHES) -> None:
        self.queue: asyncio.Queue[list[Any]] = asyncio.Queue(max_batches)
        # what a take left over when a fetched batch was larger than its limit
        self.leftover: list[Any] = []

    async def put(self, messages: list[Any]) -> None:
        """Add a fetched batch; waits while the agent is behind."""
        await self.queue.put(messages)

    async def take(self, limit: int, within_seconds: float) -> list[Any]:
        """Wait for messages, then gather up to ``limit`` within the window."""
        taken = self.leftover or await self.queue.get()
        self.leftover = []
        deadline = time.monotonic() + within_seconds
        while len(taken) < limit:
            if not self.queue.empty():
                taken = taken + self.queue.get_nowait()
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):
                    more = await self.queue.get()
            except TimeoutError:
                break
            taken = taken + more
        if len(taken) > limit:
            taken, self.leftover = taken[:limit], taken[limit:]
        return taken
