"""Fixtures for tests against a real Kafka broker on loopback.

``kafka_bootstrap`` is one broker for the whole session (or the cluster named by
``KAFKA_BOOTSTRAP_SERVERS``); ``own_broker`` is a private broker for a test that
restarts or breaks it. No broker JVM outlives the session, whether it passes, fails,
is interrupted with Ctrl-C or is sent SIGTERM.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest

from stream.devbroker import DevBroker

_HERE = Path(__file__).parent

# Every broker started here and not yet stopped, for the last-chance cleanup.
_live_brokers: set[DevBroker] = set()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything under tests/integration needs a broker, so mark it here once.
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


def pytest_configure(config: pytest.Config) -> None:
    atexit.register(_stop_live_brokers)

    # pytest turns SIGINT into KeyboardInterrupt and tears fixtures down; SIGTERM
    # would end Python on the spot, so give it the same orderly path.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _stop_live_brokers() -> None:
    for broker in list(_live_brokers):
        broker.stop()
    _live_brokers.clear()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of the session's broker (or of ``KAFKA_BOOTSTRAP_SERVERS``)."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    with _tracked(DevBroker()) as broker:
        yield broker.bootstrap_servers


@pytest.fixture
def own_broker() -> Iterator[DevBroker]:
    """A private, started broker for one test, stopped and removed afterwards."""
    with _tracked(DevBroker()) as broker:
        yield broker


@pytest.fixture
def topic_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Make topic names unique to this test and run: ``topic_name("orders")``."""
    test = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name).strip("-")[:120]

    def make(purpose: str = "topic") -> str:
        return f"{test}.{purpose}.{uuid.uuid4().hex[:8]}"

    return make


@contextlib.contextmanager
def _tracked(broker: DevBroker) -> Iterator[DevBroker]:
    """Start a broker and stop it at the end, known to the last-chance cleanup."""
    _live_brokers.add(broker)
    try:
        yield broker.start()
    finally:
        broker.stop()
        _live_brokers.discard(broker)
