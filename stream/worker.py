"""The ``worker`` command: run the stream processor until stopped.

Start-up order: read and log the settings, load the schemas, check that the input
topic exists (its partition count sizes the dedupe table), start the health
server, then hand the loop to faust. A watchdog stops the worker with a non-zero
exit when the broker stays unreachable, so an orchestrator restarts it instead
of a hung process sitting behind a green liveness probe.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from typing import Any

import faust
from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError
from faust.sensors.monitor import Monitor
from prometheus_client import CollectorRegistry, disable_created_metrics

from stream.app import EXPIRY_SWEEP_SECONDS, WorkerApp, build_app
from stream.health import HealthServer, Readiness
from stream.kafka_config import aiokafka_options
from stream.log_setup import configure_logging
from stream.metrics import Metrics
from stream.schemas import SchemaRegistry
from stream.settings import Settings, SettingsError, from_env
from stream.topics import repartition_topic_name

log = logging.getLogger(__name__)

WATCHDOG_INTERVAL_SECONDS = 5.0
LAG_INTERVAL_SECONDS = 5.0
# After asking faust to stop for an unreachable broker, how long to wait for a
# clean stop before leaving anyway (there is nothing left to commit).
HARD_EXIT_AFTER_SECONDS = 30.0
EXIT_BROKER_UNREACHABLE = 3


class BrokerUnreachable(RuntimeError):
    """No broker answered for longer than ``broker_timeout_seconds``."""


class InputTopicMissing(RuntimeError):
    """The input topic does not exist; ``topics create`` makes it."""


class CommitMonitor(Monitor):
    """faust's monitor, keeping only commits and end offsets (lag and readiness).

    faust calls its monitor several times per message and per send; the
    service's own metrics count what operators need, so the per-message
    bookkeeping is skipped.
    """

    def __init__(self, *args: Any, on_commit: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_commit = on_commit

    def on_tp_commit(self, tp_offsets: Any) -> None:
        """Record committed offsets (faust calls this after every commit)."""
        super().on_tp_commit(tp_offsets)
        self._on_commit(tp_offsets)

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        """Skip per-message bookkeeping."""

    def on_stream_event_in(
        self, tp: Any, offset: int, stream: Any, event: Any
    ) -> dict[str, Any] | None:
        """Skip per-event bookkeeping."""
        return None

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        """Skip per-event bookkeeping."""

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        """Skip per-message bookkeeping."""

    def on_send_initiated(
        self, producer: Any, topic: str, message: Any, keysize: int, valsize: int
    ) -> Any:
        """Skip per-send bookkeeping."""
        return None

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        """Skip per-send bookkeeping."""


class ProbedWorker(faust.Worker):
    """faust's worker, turning readiness off the moment it starts to stop.

    Stopping leaves the group and commits, which takes a while; the worker
    still answers probes meanwhile and must not look ready.
    """

    def __init__(self, *args: Any, readiness: Readiness, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._readiness = readiness
        # faust draws a terminal spinner even when quiet; in a log file its
        # cursor codes are garbage.
        self.spinner = None

    async def on_stop(self) -> None:
        """Mark readiness as stopping (mode calls this first in ``stop``)."""
        self._readiness.on_stopping()
        await super().on_stop()


async def input_partitions(settings: Settings) -> int:
    """Partition count of the input topic (which sizes the dedupe table)."""
    client = AIOKafkaClient(**aiokafka_options(settings))
    try:
        await asyncio.wait_for(client.bootstrap(), settings.broker_timeout_seconds)
        await client.force_metadata_update()
        partitions = client.cluster.partitions_for_topic(settings.input_topic_name)
    finally:
        await client.close()
    if not partitions:
        raise InputTopicMissing(
            f"input topic {settings.input_topic_name!r} does not exist on "
            f"{settings.bootstrap_servers}; create the topics first with "
            "'engagement-stream topics create'"
        )
    return len(partitions)


class Worker:
    """One running worker: faust app, health server, watchdog and lag reporter."""

    def __init__(self, settings: Settings, partitions: int) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()
        inputs = (settings.input_topic_name, repartition_topic_name(settings))
        schemas = SchemaRegistry.load()
        versions = {
            attribute: schemas.published(attribute, settings.published_versions).version
            for attribute in schemas.attributes()
        }
        self.metrics = Metrics(
            self.registry, input_topics=inputs, published_versions=versions
        )
        self.readiness = Readiness(settings.ready_stall_seconds)
        monitor = CommitMonitor(on_commit=self._on_commit)
        self.wapp: WorkerApp = build_app(
            settings, schemas, self.metrics, self.readiness, partitions, monitor
        )
        self.health = HealthServer(
            self.registry, self.readiness, port=settings.http_port
        )
        self._connect_signals()

    def _connect_signals(self) -> None:
        app = self.wapp.app

        @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # faust types handlers loosely
        async def on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
            partitions = [(tp.topic, tp.partition) for tp in assigned]
            log.info(
                "partitions assigned: %s",
                ", ".join(f"{t}[{p}]" for t, p in sorted(partitions)) or "none",
            )
            self.metrics.on_assigned(partitions)
            self.readiness.on_assigned(partitions)
            owned = {p for t, p in partitions if t == self.settings.input_topic_name}
            self.wapp.state.forget_unowned(owned)

        @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # as above
        async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
            log.info("partitions revoked: %d", len(revoked))
            self.readiness.on_revoked()

    def _on_commit(self, tp_offsets: Any) -> None:
        self.metrics.set_committed(
            {(tp.topic, tp.partition): o for tp, o in tp_offsets.items()}
        )
        self.readiness.on_committed()

    def run(self) -> int:
        """Run until a signal or a crash; return the exit code."""
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self.health.start())
        log.info(
            "metrics on http://0.0.0.0:%d/metrics, probes on /healthz and /readyz",
            self.health.port,
        )

        worker = ProbedWorker(
            self.wapp.app,
            readiness=self.readiness,
            loop=loop,
            loglevel=self.settings.log_level,
            override_logging=False,
            redirect_stdouts=False,
            quiet=True,
        )
        tasks = [
            loop.create_task(self._watchdog(worker)),
            loop.create_task(self._report_lag()),
            loop.create_task(self._sweep_dedupe_state()),
        ]
        try:
            worker.execute_from_commandline()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
            return code
        except BrokerUnreachable as exc:
            log.error("%s", exc)
            return EXIT_BROKER_UNREACHABLE
        except Exception as exc:
            log.error("worker stopped after a crash: %s", exc)
            return 1
        finally:
            for task in tasks:
                task.cancel()
        return 0

    async def _watchdog(self, worker: faust.Worker) -> None:
        """Stop the worker when no broker answers for the configured time."""
        client = AIOKafkaClient(**aiokafka_options(self.settings))
        last_ok = time.monotonic()
        timeout = self.settings.broker_timeout_seconds
        bootstrapped = False
        while True:
            try:
                if not bootstrapped:
                    await asyncio.wait_for(client.bootstrap(), 10.0)
                    bootstrapped = True
                await asyncio.wait_for(client.fetch_all_metadata(), 10.0)
            except Exception as exc:
                self.readiness.on_disconnected()
                silent = time.monotonic() - last_ok
                log.warning(
                    "no answer from Kafka at %s for %.0f s (%s)",
                    self.settings.bootstrap_servers,
                    silent,
                    exc,
                )
                if silent > timeout:
                    await self._give_up(worker, silent)
                    return
            else:
                last_ok = time.monotonic()
                self.readiness.on_connected()
            await asyncio.sleep(WATCHDOG_INTERVAL_SECONDS)

    async def _give_up(self, worker: faust.Worker, silent: float) -> None:
        error = BrokerUnreachable(
            f"Kafka at {self.settings.bootstrap_servers} has not answered for "
            f"{silent:.0f} s (limit ES_BROKER_TIMEOUT_SECONDS="
            f"{self.settings.broker_timeout_seconds:g}); stopping so the worker "
            "can be restarted. Check the broker address, network and credentials."
        )
        log.critical("%s", error)
        loop = asyncio.get_running_loop()
        loop.call_later(HARD_EXIT_AFTER_SECONDS, _hard_exit)
        await worker.crash(error)

    async def _report_lag(self) -> None:
        """Publish consumer lag per assigned partition every few seconds."""
        monitor = self.wapp.app.monitor
        while True:
            await asyncio.sleep(LAG_INTERVAL_SECONDS)
            lags = {}
            for tp, end in dict(monitor.tp_end_offsets).items():
                committed = monitor.tp_committed_offsets.get(tp, 0)
                lags[(tp.topic, tp.partition)] = max(0, end - committed)
            self.metrics.set_consumer_lag(lags)
            self.readiness.on_lag(sum(lags.values()))
            self.metrics.set_dedupe_keys(len(self.wapp.state.store))

    async def _sweep_dedupe_state(self) -> None:
        """Expire old dedupe entries once a minute, busy or idle."""
        runner = self.wapp.runner
        assert runner is not None
        while True:
            await asyncio.sleep(EXPIRY_SWEEP_SECONDS)
            await runner.sweep()


def _hard_exit() -> None:
    logging.shutdown()
    os._exit(EXIT_BROKER_UNREACHABLE)


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``engagement-stream worker``."""
    parser = subparsers.add_parser(
        "worker", help="run the stream processor (settings from the environment)"
    )
    parser.add_argument("--bootstrap-servers", help="overrides KAFKA_BOOTSTRAP_SERVERS")
    parser.add_argument("--http-port", type=int, help="overrides ES_HTTP_PORT")
    parser.add_argument(
        "--input-api-version",
        type=int,
        choices=(1, 2),
        help="API version of input records without a header (ES_INPUT_API_VERSION)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        settings = from_env()
    except SettingsError as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2
    changes: dict[str, object] = {}
    if args.bootstrap_servers:
        changes["bootstrap_servers"] = args.bootstrap_servers
    if args.http_port is not None:
        changes["http_port"] = args.http_port
    if args.input_api_version is not None:
        changes["input_api_version"] = args.input_api_version
    settings = settings.replace(**changes)

    configure_logging(settings.log_level)
    # Counters' *_created series double the exposition for no operator value.
    disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in the client
    log.info("starting with settings %s", settings.describe())
    try:
        partitions = asyncio.run(input_partitions(settings))
    except InputTopicMissing as exc:
        log.error("cannot start: %s", exc)
        return 2
    except (KafkaError, TimeoutError, OSError) as exc:
        log.error(
            "cannot start: no usable connection to Kafka at %s (%s); check "
            "KAFKA_BOOTSTRAP_SERVERS, and KAFKA_SECURITY_PROTOCOL with its SASL "
            "credentials or TLS files if the cluster needs them",
            settings.bootstrap_servers,
            str(exc) or type(exc).__name__,
        )
        return 2
    log.info("input topic %s has %d partitions", settings.input_topic_name, partitions)
    return Worker(settings, partitions).run()
