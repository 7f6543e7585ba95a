"""Runs of the worker or the reference loop against a broker, and what they did.

A run gets its own output topics and consumer group but reads a shared input
topic that already holds every record. The output topics' end offsets and each
process's CPU time are sampled every 100 ms. The rate is taken between 10% and
90% of the run's outputs, and only while every process of the group holds its
partitions and has work: from the first to the last sample at which each
process is busy (using at least a quarter of a core). Without the last rule a
pair would be timed partly as one worker: the worker that joins second first
restores the dedupe state of the partitions it takes over, so the first one
runs out of input earlier and idles while the other finishes.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from workload import Record

from stream.attributes import ATTRIBUTES
from stream.settings import Settings, from_env
from stream.topics import TopicPlan, ensure_topics

BENCH = Path(__file__).resolve().parent
SAMPLE_SECONDS = 0.1
# A process using less CPU than this between two samples is waiting (for
# partitions, for a rebalance, for input), not working.
BUSY_CORES = 0.25
RUN_TIMEOUT_SECONDS = 1800.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    """The state of a run at one moment."""

    at: float
    outputs: int
    cpu_seconds: float
    cpu_by_process: tuple[float, ...] = ()


@dataclass
class RunResult:
    """What one run did."""

    kind: str
    processes: int
    outputs: int = 0
    events_per_second: float = 0.0
    # all outputs over the time from the first output to the last one
    whole_run_events_per_second: float = 0.0
    cpu_us_per_event: float = 0.0
    peak_rss_mb: float = 0.0
    samples: list[Sample] = field(default_factory=list)


def input_env(bootstrap: str, input_topic: str) -> dict[str, str]:
    """Environment shared by every run: the broker and the shared input topic."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "ES_TOPIC_PREFIX": "",
        "ES_INPUT_TOPIC": input_topic,
        "ES_INPUT_API_VERSION": "",
        "ES_HTTP_PORT": "0",
        "ES_LOG_LEVEL": "INFO",
    }


def run_env(base: dict[str, str], tag: str) -> dict[str, str]:
    """A run's own output topics, dead letter queue and consumer group."""
    env = {
        **base,
        "ES_APP_ID": f"bench-{tag}",
        "ES_DEAD_LETTER_TOPIC": f"{tag}.deadLetters",
        "ES_DATA_DIR": tempfile.mkdtemp(prefix=f"bench-{tag}-"),
    }
    for spec in ATTRIBUTES.values():
        env[f"ES_TOPIC_{spec.env_suffix}"] = f"{tag}.{spec.topic}"
    return env


async def create_topics(env: dict[str, str], partitions: int) -> Settings:
    """Create the input and a run's output topics; return the run's settings."""
    settings = from_env(env)
    await ensure_topics(settings, TopicPlan(partitions=partitions))
    return settings


async def produce(bootstrap: str, topic: str, records: Iterable[Record]) -> int:
    """Produce records to the input topic, keyed, with the apiVersion header."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=20,
        max_batch_size=1024 * 1024,
        max_request_size=4 * 1024 * 1024,
        acks="all",
    )
    await producer.start()
    count = 0
    try:
        pending = []
        for record in records:
            header = [("apiVersion", str(record.api_version).encode())]
            pending.append(
                await producer.send(topic, record.value, key=record.key, headers=header)
            )
            count += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count


def command(kind: str) -> list[str]:
    """The process of a run: the real worker or the reference loop."""
    if kind == "worker":
        return [sys.executable, "-m", "stream.cli", "worker"]
    return [sys.executable, str(BENCH / "reference.py")]


async def run(
    kind: str, processes: int, base_env: dict[str, str], partitions: int
) -> RunResult:
    """Start ``processes`` of ``kind``, let them consume the input, measure."""
    env = run_env(base_env, uuid.uuid4().hex[:8])
    settings = await create_topics(env, partitions)
    logs = Path(env["ES_DATA_DIR"])
    children = [
        subprocess.Popen(
            command(kind),
            env={**os.environ, **env},
            stdout=(logs / f"{kind}-{i}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for i in range(processes)
    ]
    try:
        result = await watch(settings, children, partitions)
    finally:
        peaks = [peak_rss_mb(child.pid) for child in children]
        for child in children:
            stop(child)
    result.kind = kind
    result.peak_rss_mb = max(peaks)
    return result


async def watch(
    settings: Settings, children: list[subprocess.Popen[bytes]], partitions: int
) -> RunResult:
    """Sample outputs until the group committed the whole input."""
    outputs = [settings.attribute_topic_name(a) for a in ATTRIBUTES]
    outputs.append(settings.dead_letter_topic_name)
    out_tps = [TopicPartition(t, p) for t in outputs for p in range(partitions)]
    in_tps = [TopicPartition(settings.input_topic_name, p) for p in range(partitions)]
    probe = Probe(settings)
    await probe.start()
    try:
        input_end = await probe.end_offsets(in_tps)
        samples: list[Sample] = []
        stable_at = None
        deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            for child in children:
                if child.poll() is not None:
                    raise RuntimeError(f"a {child.args} process exited early")
            count = sum((await probe.end_offsets(out_tps)).values())
            by_process = tuple(cpu_seconds(child.pid) for child in children)
            samples.append(Sample(time.monotonic(), count, sum(by_process), by_process))
            if stable_at is None and await probe.stable(len(children)):
                stable_at = samples[-1].at
            if count and await probe.committed_all(input_end):
                break
            await asyncio.sleep(SAMPLE_SECONDS)
        else:
            raise RuntimeError("the run did not finish in time")
    finally:
        await probe.stop()
    return summarize(samples, stable_at or samples[0].at, len(children))


def summarize(samples: list[Sample], stable_at: float, processes: int) -> RunResult:
    """Events per second and CPU per event while every process works.

    The window runs between 10% and 90% of the outputs, after the group is
    stable, from the first to the last sample at which every process was busy
    since the sample before. A short pause in between stays in the window.
    """
    total = samples[-1].outputs
    busy = [i > 0 and all_busy(samples[i - 1], samples[i]) for i in range(len(samples))]
    window = [
        i
        for i, s in enumerate(samples)
        if busy[i] and s.at >= stable_at and 0.1 * total <= s.outputs <= 0.9 * total
    ]
    result = RunResult(kind="", processes=processes, outputs=total, samples=samples)
    started = next(s.at for s in samples if s.outputs > 0)
    ended = next(s.at for s in samples if s.outputs == total)
    if ended > started:
        result.whole_run_events_per_second = total / (ended - started)
    # NaN, not 0, when the run was too short to time: a ratio of it is NaN too.
    result.events_per_second = result.cpu_us_per_event = math.nan
    if len(window) < 2:
        return result
    first, last = samples[window[0]], samples[window[-1]]
    events = last.outputs - first.outputs
    if last.at > first.at and events > 0:
        result.events_per_second = events / (last.at - first.at)
        result.cpu_us_per_event = (last.cpu_seconds - first.cpu_seconds) / events * 1e6
    return result


def all_busy(before: Sample, after: Sample) -> bool:
    """Whether every process used at least BUSY_CORES between two samples."""
    seconds = after.at - before.at
    return seconds > 0 and all(
        (end - start) / seconds >= BUSY_CORES
        for start, end in zip(before.cpu_by_process, after.cpu_by_process, strict=True)
    )


class Probe:
    """An admin client and a group-less consumer that look at the broker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        servers = settings.bootstrap_servers
        self.admin = AIOKafkaAdminClient(bootstrap_servers=servers)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=servers, group_id=None)

    async def start(self) -> None:
        """Connect both clients."""
        await self.admin.start()
        await self.consumer.start()

    async def stop(self) -> None:
        """Disconnect both clients."""
        await self.admin.close()
        await self.consumer.stop()

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """The end offset of every partition."""
        ends: dict[TopicPartition, int] = await self.consumer.end_offsets(tps)
        return ends

    async def committed_all(self, ends: dict[TopicPartition, int]) -> bool:
        """Whether the run's group committed up to ``ends`` everywhere."""
        committed = await self.admin.list_consumer_group_offsets(self.settings.app_id)
        return all(
            end == 0 or (tp in committed and committed[tp].offset >= end)
            for tp, end in ends.items()
        )

    async def stable(self, members: int) -> bool:
        """Whether the group is Stable with ``members`` members."""
        try:
            responses = await self.admin.describe_consumer_groups(
                [self.settings.app_id]
            )
        except Exception:
            return False
        for response in responses:
            for group in response.groups:
                state, group_members = group[2], group[5]
                if state == "Stable" and len(group_members) == members:
                    return True
        return False


def cpu_seconds(pid: int) -> float:
    """User plus system CPU of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a running process, in MB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def stop(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 20 s."""
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
