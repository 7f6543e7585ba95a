"""The faust app class the worker runs: faust's Kafka transport with one fix.

The worker's consumer reads the input topic and the repartition topic, and the
repartition topic is usually empty. aiokafka keeps one fetch request in flight
per broker, and the broker holds a request until some partition in it has data
or the request's maximum wait passes. faust asks for 1.5 s. Once the input
partitions' records are buffered in the client, the next request holds only
the empty repartition partitions, and it blocks every further fetch, of the
input too, for those 1.5 s. Measured on a broker on the same machine, the
worker spent half its time waiting on such requests and ran at half the rate
of a plain aiokafka loop.

A short maximum wait keeps the empty partitions from holding up the input; an
idle worker then sends a fetch request about ten times a second per broker.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as aiokafka_driver

# How long the broker may hold a fetch request that has no data to return.
FETCH_MAX_WAIT_MS = 100


class ShortPollConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    """faust's consumer thread with a short fetch wait."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # faust passes fetch_max_wait_ms=1500 and offers no setting for it;
        # the client copies this into its fetcher when it starts.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class ShortPollConsumer(aiokafka_driver.Consumer):
    """faust's aiokafka consumer, running the short-poll consumer thread."""

    def _new_consumer_thread(self) -> Any:
        return ShortPollConsumerThread(self, loop=self.loop, beacon=self.beacon)


class ShortPollTransport(aiokafka_driver.Transport):
    """faust's aiokafka transport with the short-poll consumer."""

    Consumer = ShortPollConsumer


class WorkerFaustApp(faust.App):
    """A faust app whose consumer uses the short-poll transport."""

    def _new_transport(self) -> Any:
        return ShortPollTransport(self.conf.broker_consumer, self)
