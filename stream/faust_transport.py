"""The faust app class the worker runs: faust's Kafka transport with two changes.

Short fetch wait. The worker's consumer reads the input topic and the
repartition topic, and the repartition topic is usually empty. aiokafka keeps
one fetch request in flight per broker, and the broker holds a request until
some partition in it has data or the request's maximum wait passes. faust asks
for 1.5 s. Once the input partitions' records are buffered in the client, the
next request holds only the empty repartition partitions, and it blocks every
further fetch, of the input too, for those 1.5 s. Measured on a broker on the
same machine, the worker spent half its time waiting on such requests. A short
maximum wait keeps the empty partitions from holding up the input; an idle
worker then sends a fetch request about ten times a second per broker.

Batch hand-off. faust's fetch loop passes each message to the agent's channel
through four new asyncio tasks and a chain of callbacks. For the topics given to
``WorkerFaustApp.hand_over``, this consumer instead puts each fetched batch on a
``Handoff`` whole, for the agent to take. Everything else about fetching is
faust's: the same ``getmany`` (rebalance generations, paused partitions), read
offsets, gap tracking for commits, commit-every, and giving up a hand-off when
a rebalance suspends the flow, as faust gives up a message. Other topics (table
changelogs during recovery) still go through faust's own callback.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as aiokafka_driver

from stream.handoff import Handoff

# How long the broker may hold a fetch request that has no data to return.
FETCH_MAX_WAIT_MS = 100


class ShortFetchConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    """faust's consumer thread with a short fetch wait."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # faust passes fetch_max_wait_ms=1500 and offers no setting for it;
        # the client copies this into its fetcher when it starts.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class HandoffConsumer(aiokafka_driver.Consumer):
    """faust's aiokafka consumer: short fetch wait, batch hand-off."""

    def _new_consumer_thread(self) -> Any:
        return ShortFetchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:
        """Fetch until stopped; hand messages over in batches or one by one."""
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                fetched = self.getmany(timeout=1.0)
                # getmany can return at once for a long time; let others run.
                await self.sleep(0)
                if not self.should_stop:
                    await self._deliver(fetched)
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _deliver(self, fetched: Any) -> None:
        """Deliver one fetch: batch the hand-off topics, call back for the rest."""
        handoff, handoff_topics = cast(WorkerFaustApp, self.app).handoff
        batch: list[Any] = []
        async for tp, message in fetched:
            if not await self._is_next(tp, message):
                continue
            if message.topic in handoff_topics:
                batch.append(message)
            else:
                await self._hand_batch_over(handoff, batch)
                batch = []
                await self.wait_first(self.callback(message), self.suspend_flow.wait())
            self._read_offset[tp] = message.offset
        await self._hand_batch_over(handoff, batch)

    async def _is_next(self, tp: Any, message: Any) -> bool:
        """Check a message as faust does: skip repeats, note gaps, commit every N."""
        offset = message.offset
        read_offset = self._read_offset[tp]
        if read_offset is not None and offset < read_offset:
            return False
        # Offsets skipped by compaction or transaction markers are never
        # acknowledged; faust must know them to commit past them.
        if (
            read_offset is not None
            and offset - read_offset > 1
            and self.app.topics.acks_enabled_for(message.topic)
        ):
            await self._add_gap(tp, read_offset + 1, offset)
        commit_every = self._commit_every
        if commit_every is not None and self._n_acked >= commit_every:
            self._n_acked = 0
            await self.commit()
        return True

    async def _hand_batch_over(self, handoff: Handoff, batch: list[Any]) -> None:
        """Put a batch on the hand-off unless a rebalance suspends the flow first.

        A batch given up here was neither tracked nor acknowledged, so its
        records are fetched again from the committed offset after the rebalance.
        """
        if batch:
            await self.wait_first(handoff.put(batch), self.suspend_flow.wait())


class WorkerTransport(aiokafka_driver.Transport):
    """faust's aiokafka transport with the hand-off consumer."""

    Consumer = HandoffConsumer


class WorkerFaustApp(faust.App):
    """A faust app whose consumer hands fetched batches to the agent."""

    # Where fetched messages of the hand-off topics go; set before the app runs
    # so no message can reach faust's channel queue, which nothing reads.
    handoff: tuple[Handoff, frozenset[str]] = (Handoff(), frozenset())

    def hand_over(self, topics: frozenset[str], handoff: Handoff) -> None:
        """Put fetched messages of ``topics`` on ``handoff``, in batches."""
        self.handoff = (handoff, topics)

    def _new_transport(self) -> Any:
        return WorkerTransport(self.conf.broker_consumer, self)
