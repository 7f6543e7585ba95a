"""The health server over real HTTP, and the readiness state with a fake clock."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from stream.health import HealthServer, Readiness
from stream.metrics import Metrics

STALL = 120.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def get(url: str) -> tuple[int, str, str]:
    """GET a URL: (status, content type, body), error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], _text(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], _text(error)


def _text(response) -> str:
    return response.read().decode()


def serve_and_get(readiness: Readiness, paths: list[str]) -> list[tuple[int, str, str]]:
    """Start a server on a free loopback port, GET each path, stop it."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.count_published("lead", 1, 7)

    async def scenario() -> list[tuple[int, str, str]]:
        server = HealthServer(registry, readiness, host="127.0.0.1", port=0)
        port = await server.start()
        try:
            base = f"http://127.0.0.1:{port}"
            # urllib blocks, and the server needs this loop to answer.
            return [await asyncio.to_thread(get, base + path) for path in paths]
        finally:
            await server.stop()

    return asyncio.run(scenario())


def ready_state(clock: FakeClock | None = None) -> Readiness:
    readiness = Readiness(STALL, clock=clock or FakeClock())
    readiness.on_connected()
    readiness.on_assigned([("in", 0), ("in", 1)])
    return readiness


# --- the server ---------------------------------------------------------------


def test_metrics_endpoint_serves_the_registry():
    [(status, content_type, body)] = serve_and_get(ready_state(), ["/metrics"])

    assert status == 200
    assert content_type.startswith("text/plain;")
    published = 'events_published_total{attribute="lead",schema_version="1"} 7.0'
    assert f"engagement_stream_{published}" in body
    assert "# TYPE engagement_stream_dead_letters_total counter" in body


def test_metrics_endpoint_speaks_openmetrics_when_asked():
    registry = CollectorRegistry()
    Metrics(registry).count_dedupe_expired(4)

    async def scenario() -> tuple[str, str]:
        server = HealthServer(registry, Readiness(STALL), host="127.0.0.1", port=0)
        port = await server.start()
        try:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/metrics",
                headers={"Accept": "application/openmetrics-text; version=1.0.0"},
            )
            return await asyncio.to_thread(fetch, request)
        finally:
            await server.stop()

    content_type, body = asyncio.run(scenario())

    assert content_type.startswith("application/openmetrics-text;")
    assert "engagement_stream_dedupe_expirations_total 4.0" in body
    assert body.endswith("# EOF\n")


def fetch(request: urllib.request.Request) -> tuple[str, str]:
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.headers["Content-Type"], _text(response)


def test_healthz_answers_ok():
    [(status, _, body)] = serve_and_get(Readiness(STALL), ["/healthz"])

    assert (status, body) == (200, "ok\n")


def test_readyz_is_200_when_ready():
    [(status, _, body)] = serve_and_get(ready_state(), ["/readyz"])

    assert status == 200
    assert body.startswith("ready: assigned partitions: 2")


def test_readyz_is_503_with_the_reason_when_not_ready():
    [(status, _, body)] = serve_and_get(Readiness(STALL), ["/readyz"])

    assert (status, body) == (503, "not ready: not connected to the broker\n")


def test_unknown_path_is_404():
    [(status, _, _)] = serve_and_get(Readiness(STALL), ["/nope"])

    assert status == 404


def test_port_is_unknown_before_start():
    server = HealthServer(CollectorRegistry(), Readiness(STALL), port=0)

    with pytest.raises(RuntimeError, match="start"):
        _ = server.port


def test_stop_releases_the_port():
    async def scenario() -> int:
        server = HealthServer(
            CollectorRegistry(), Readiness(STALL), host="127.0.0.1", port=0
        )
        port = await server.start()
        assert server.port == port
        await server.stop()
        await server.stop()  # a second stop is harmless
        return port

    port = asyncio.run(scenario())

    with pytest.raises(urllib.error.URLError):
        get(f"http://127.0.0.1:{port}/healthz")


# --- readiness ----------------------------------------------------------------


def test_not_ready_until_connected():
    readiness = Readiness(STALL, clock=FakeClock())
    readiness.on_assigned([("in", 0)])

    assert readiness.check() == (False, "not connected to the broker")


def test_not_ready_until_assigned():
    readiness = Readiness(STALL, clock=FakeClock())
    readiness.on_connected()

    assert readiness.check() == (False, "waiting for a partition assignment")


def test_ready_when_connected_and_assigned():
    assert ready_state().check() == (
        True,
        "assigned partitions: 2, consumer lag: unknown",
    )


def test_an_empty_assignment_is_a_legitimately_idle_worker():
    readiness = Readiness(STALL, clock=FakeClock())
    readiness.on_connected()
    readiness.on_assigned([])

    assert readiness.check() == (True, "idle: no partitions assigned")


def test_not_ready_during_a_rebalance():
    readiness = ready_state()
    readiness.on_revoked()

    assert readiness.check() == (False, "waiting for a partition assignment")


def test_not_ready_after_losing_the_broker():
    readiness = ready_state()
    readiness.on_disconnected()

    assert readiness.check()[0] is False


def test_not_ready_while_stopping():
    readiness = ready_state()
    readiness.on_stopping()

    assert readiness.check() == (False, "stopping")


def test_stalls_when_lag_grows_without_commits():
    clock = FakeClock()
    readiness = ready_state(clock)
    readiness.on_lag(10)
    readiness.on_committed()

    clock.advance(STALL - 1)
    readiness.on_lag(50)
    assert readiness.check()[0] is True

    clock.advance(1)
    assert readiness.check() == (
        False,
        "no commit for 120s while lag grew from 10 to 50",
    )


def test_a_commit_ends_the_stall():
    clock = FakeClock()
    readiness = ready_state(clock)
    readiness.on_lag(10)
    clock.advance(STALL * 2)
    assert readiness.check()[0] is False

    readiness.on_committed()

    assert readiness.check() == (True, "assigned partitions: 2, consumer lag: 10")


def test_constant_lag_without_commits_is_not_a_stall():
    clock = FakeClock()
    readiness = ready_state(clock)
    readiness.on_lag(2)
    readiness.on_committed()

    clock.advance(STALL * 10)
    readiness.on_lag(2)

    assert readiness.check()[0] is True


def test_no_pending_input_without_commits_is_not_a_stall():
    clock = FakeClock()
    readiness = ready_state(clock)
    readiness.on_lag(0)

    clock.advance(STALL * 10)

    assert readiness.check()[0] is True


def test_stall_clock_restarts_when_lag_reaches_zero():
    clock = FakeClock()
    readiness = ready_state(clock)
    clock.advance(STALL * 10)
    readiness.on_lag(0)

    clock.advance(STALL - 1)
    readiness.on_lag(30)

    assert readiness.check()[0] is True
    clock.advance(1)
    assert readiness.check()[0] is False


def test_a_new_assignment_restarts_the_stall_clock():
    clock = FakeClock()
    readiness = ready_state(clock)
    readiness.on_lag(5)
    clock.advance(STALL * 2)
    readiness.on_lag(80)
    assert readiness.check()[0] is False

    readiness.on_assigned([("in", 3)])

    assert readiness.check() == (True, "assigned partitions: 1, consumer lag: 80")


def test_check_takes_an_explicit_now():
    clock = FakeClock()
    readiness = ready_state(clock)
    readiness.on_lag(1)
    readiness.on_lag(9)

    assert readiness.check(clock.now + STALL - 0.5)[0] is True
    assert readiness.check(clock.now + STALL)[0] is False
