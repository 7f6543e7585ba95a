"""The HTTP endpoints for probes and scrapes: /metrics, /healthz and /readyz.

The server runs on the worker's event loop (aiohttp, which faust already
needs). Liveness only proves that the process and its loop answer. Readiness
is decided by ``Readiness``, a small state object the worker updates from its
consumer callbacks and whose ``check(now)`` is a pure function of that state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

logger = logging.getLogger(__name__)


class Readiness:
    """Whether the worker should receive traffic, from what it last reported.

    Ready means: connected to the broker, a partition assignment received (an
    empty one counts: with more workers than partitions some are idle), and
    commits progressing. The worker is stalled, hence not ready, when no
    commit has happened for ``stall_seconds`` while the consumer lag grew past
    what it was at the last commit. A constant lag without commits is
    tolerated: some topics end in markers that keep the lag at 1 or 2.

    Args:
        stall_seconds: how long commits may pause while lag grows.
        clock: monotonic seconds; tests pass a fake one.
    """

    def __init__(
        self, stall_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stall_seconds = stall_seconds
        self._clock = clock
        self._connected = False
        self._stopping = False
        self._partitions: int | None = None  # None until the first assignment
        self._lag: int | None = None  # None until the first report
        self._progress_at = clock()
        self._lag_at_progress = 0

    def on_connected(self) -> None:
        """The consumer reached the broker."""
        self._connected = True

    def on_disconnected(self) -> None:
        """The consumer lost the broker (or never had it)."""
        self._connected = False

    def on_assigned(self, partitions: Collection[object]) -> None:
        """A rebalance ended with these partitions assigned (maybe none)."""
        self._partitions = len(partitions)

        # A new assignment starts a new commit history.
        self._mark_progress()

    def on_revoked(self) -> None:
        """A rebalance started: partitions are revoked until the next assignment."""
        self._partitions = None

    def on_committed(self) -> None:
        """Offsets were committed: the worker makes progress."""
        self._mark_progress()

    def on_lag(self, total: int) -> None:
        """Report the consumer lag summed over the assigned partitions."""
        self._lag = total

        # Nothing pending is as good as progress: the stall clock restarts.
        if total == 0:
            self._mark_progress()

    def on_stopping(self) -> None:
        """The worker shuts down: stop sending it traffic before it is gone."""
        self._stopping = True

    def check(self, now: float | None = None) -> tuple[bool, str]:
        """Decide readiness.

        Args:
            now: the clock's current reading; read from the clock if None.

        Returns:
            (ready, reason): reason is a short sentence for the probe's body.
        """
        now = self._clock() if now is None else now
        if self._stopping:
            return False, "stopping"
        if not self._connected:
            return False, "not connected to the broker"
        if self._partitions is None:
            return False, "waiting for a partition assignment"
        stalled = self._stalled_for(now)
        if stalled is not None:
            return False, (
                f"no commit for {stalled:.0f}s while lag grew from "
                f"{self._lag_at_progress} to {self._lag}"
            )
        if self._partitions == 0:
            return True, "idle: no partitions assigned"
        lag = "unknown" if self._lag is None else self._lag
        return True, f"assigned partitions: {self._partitions}, consumer lag: {lag}"

    def _stalled_for(self, now: float) -> float | None:
        waited = now - self._progress_at
        if self._lag is None or waited < self.stall_seconds:
            return None
        # TODO(stuck with a steady lag): a worker that stops committing while no
        # new input arrives stays ready; only growing lag proves new input.
        if self._lag <= self._lag_at_progress:
            return None
        return waited

    def _mark_progress(self) -> None:
        self._progress_at = self._clock()
        self._lag_at_progress = self._lag or 0


class HealthServer:
    """Serves /metrics, /healthz and /readyz on the running event loop.

    Args:
        registry: the registry whose metrics /metrics exposes.
        readiness: the state /readyz reports.
        host: the address to bind; all interfaces by default, for containers.
        port: the port to bind; 0 picks a free one (see ``port`` after start).
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        readiness: Readiness,
        *,
        host: str = "0.0.0.0",
        port: int = 8080,
    ) -> None:
        self.registry = registry
        self.readiness = readiness
        self.host = host
        self._requested_port = port
        self._bound_port: int | None = None
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        """The port bound; only known after ``start``."""
        if self._bound_port is None:
            raise RuntimeError("HealthServer.port is known once start() returned")
        return self._bound_port

    async def start(self) -> int:
        """Bind and start serving; returns the bound port."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)

        # Probes every few seconds would flood the log with access lines.
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port)
        await site.start()

        self._bound_port = _port_of(self._runner.addresses)
        logger.info("health server listening on %s:%d", self.host, self._bound_port)
        return self._bound_port

    async def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            logger.info("health server stopped")

    async def _metrics(self, request: web.Request) -> web.Response:
        # Prometheus asks for OpenMetrics; curl and older scrapers get plain text.
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = encode(self.registry)
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _healthz(self, request: web.Request) -> web.Response:
        # Answering at all is the proof: the handler runs on the worker's loop.
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        ready, reason = self.readiness.check()
        if ready:
            return web.Response(text=f"ready: {reason}\n")
        return web.Response(status=503, text=f"not ready: {reason}\n")


def _port_of(addresses: list[object]) -> int:
    # Each address is a socket name tuple; (host, port) for IPv4, longer for v6.
    for address in addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError(f"health server bound no TCP address: {addresses!r}")
