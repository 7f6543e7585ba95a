"""The reference loop: the worker's job in plain aiokafka, without faust.

It consumes batches with ``getmany``, runs the same ``BatchProcessor`` as the
worker (dedupe state in a dict, not durable), sends every output without
awaiting each, waits for all acknowledgements, then commits the batch. Settings
come from the environment, as for the worker.
Run: .venv/bin/python bench/reference.py (the benchmark starts it).
"""

from __future__ import annotations

import asyncio
import signal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stream.dead_letters import SourcePosition
from stream.kafka_config import aiokafka_options
from stream.processor import (
    BatchProcessor,
    InMemorySeenEvents,
    RawRecord,
    remember_all,
)
from stream.schemas import SchemaRegistry
from stream.settings import Settings, from_env


async def run(settings: Settings) -> None:
    options = aiokafka_options(settings)
    consumer = AIOKafkaConsumer(
        settings.input_topic_name,
        group_id=settings.app_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **options,
    )
    producer = AIOKafkaProducer(
        acks="all", linger_ms=10, max_batch_size=512 * 1024, **options
    )
    processor = BatchProcessor(settings, SchemaRegistry.load())
    state = InMemorySeenEvents()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    await consumer.start()
    await producer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(
                timeout_ms=100, max_records=settings.batch_size
            )
            messages = [m for batch in batches.values() for m in batch]
            if messages:
                await process(messages, processor, state, producer)
                await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()


async def process(
    messages: list,  # type: ignore[type-arg]  # aiokafka ConsumerRecords, untyped
    processor: BatchProcessor,
    state: InMemorySeenEvents,
    producer: AIOKafkaProducer,
) -> None:
    records = [
        RawRecord(
            m.value,
            m.key,
            list(m.headers),
            SourcePosition(m.topic, m.partition, m.offset, m.timestamp),
        )
        for m in messages
    ]
    outcome = processor.process(records, state)

    pending = []
    for out in outcome.messages:
        pending.append(
            await producer.send(
                out.topic,
                out.value,
                key=out.key,
                headers=out.headers,
                timestamp_ms=out.timestamp_ms,
            )
        )
    await asyncio.gather(*pending)
    remember_all(outcome, state)


if __name__ == "__main__":
    asyncio.run(run(from_env()))
