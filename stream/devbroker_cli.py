"""The ``dev-broker`` command: a local Kafka broker that outlives the command.

``start`` records the running broker in a small JSON state file so that later
``stop`` and ``status`` calls find it again; the broker itself is
:class:`stream.devbroker.DevBroker`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from stream.devbroker import (
    KAFKA_VERSION,
    DevBroker,
    DevBrokerError,
    cache_root,
    fetch_kafka,
    running_broker_pids,
)
from stream.settings import SECURITY_PROTOCOLS

logger = logging.getLogger(__name__)


def _state_file(args: argparse.Namespace) -> Path:
    chosen: Path | None = args.state_file
    return chosen or cache_root() / "dev-broker.json"


def _read_state(path: Path) -> dict[str, Any] | None:
    """The recorded broker, or None when none was recorded or it is gone."""
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if state["pid"] in running_broker_pids(Path(state["data_dir"])):
        return state
    return None


def _fetch_command(args: argparse.Namespace) -> int:
    try:
        libs = fetch_kafka()
    except DevBrokerError as exc:
        print(f"dev-broker: {exc}", file=sys.stderr)
        return 1
    print(f"dev-broker: Kafka {KAFKA_VERSION} jars in {libs}", file=sys.stderr)
    return 0


def _start_command(args: argparse.Namespace) -> int:
    state_file = _state_file(args)
    state = _read_state(state_file)
    if state is not None:
        print(
            f"dev-broker: expected no broker running, found pid {state['pid']} on "
            f"127.0.0.1:{state['port']}; run `engagement-stream dev-broker stop` "
            "first or pass another --state-file",
            file=sys.stderr,
        )
        return 1

    broker = DevBroker(
        port=args.port,
        data_dir=args.data_dir,
        security_protocol=args.security_protocol,
        die_with_parent=False,  # it must outlive this command
    )
    try:
        broker.start()
    except DevBrokerError as exc:
        print(f"dev-broker: {exc}", file=sys.stderr)
        return 1

    state = {
        "pid": broker.pid,
        "port": broker.port,
        "data_dir": str(broker.data_dir),
        "owns_data_dir": broker.owns_data_dir,
        "log": str(broker.log_path),
    }
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps(state, indent=2) + "\n")
    print(
        f"dev-broker: running, pid {broker.pid}, log {broker.log_path}", file=sys.stderr
    )

    # Lines a shell can eval, the bootstrap servers last.
    security = broker.security()
    for name, value in (
        ("KAFKA_SECURITY_PROTOCOL", security.protocol),
        ("KAFKA_SASL_MECHANISM", security.sasl_mechanism),
        ("KAFKA_SASL_USERNAME", security.sasl_username),
        ("KAFKA_SASL_PASSWORD", security.sasl_password),
        ("KAFKA_SSL_CAFILE", security.ssl_cafile),
    ):
        if value and security.protocol != "PLAINTEXT":
            print(f"{name}={value}")
    print(f"KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}")
    return 0


def _stop_command(args: argparse.Namespace) -> int:
    state_file = _state_file(args)
    state = _read_state(state_file)
    if state is None:
        print("dev-broker: not running", file=sys.stderr)
        state_file.unlink(missing_ok=True)
        return 0

    pid = state["pid"]
    _stop_pid(pid, timeout_seconds=30.0)
    if state["owns_data_dir"] and not args.keep_data_dir:
        shutil.rmtree(state["data_dir"], ignore_errors=True)
    state_file.unlink(missing_ok=True)
    print(f"dev-broker: stopped pid {pid}", file=sys.stderr)
    return 0


def _stop_pid(pid: int, timeout_seconds: float) -> None:
    """Stop a broker this process did not start: SIGTERM, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        if not _gone_within(pid, timeout_seconds):
            logger.warning("Kafka broker (pid %d) ignored SIGTERM; killing it", pid)
            os.kill(pid, signal.SIGKILL)
            _gone_within(pid, 10.0)


def _gone_within(pid: int, timeout_seconds: float) -> bool:
    deadline = time.monotonic() + timeout_seconds
    while pid in running_broker_pids():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _status_command(args: argparse.Namespace) -> int:
    state = _read_state(_state_file(args))
    if state is None:
        print("dev-broker: not running")
        return 1
    print(
        f"dev-broker: running, pid {state['pid']}, "
        f"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{state['port']}, log {state['log']}"
    )
    return 0


def add_parser(subparsers: Any) -> None:
    """Register ``dev-broker fetch|start|stop|status``."""
    parser = subparsers.add_parser(
        "dev-broker",
        help="run a local single-node Kafka broker for development and tests",
        description="Fetch, start, stop or check a local Kafka broker on 127.0.0.1.",
    )
    parser.add_argument(
        "--state-file",
        type=Path,
        default=None,
        help="where the running broker is recorded (default: in the cache dir)",
    )
    actions = parser.add_subparsers(dest="action", required=True)

    fetch = actions.add_parser(
        "fetch", help=f"resolve Kafka {KAFKA_VERSION} with Maven"
    )
    fetch.set_defaults(handler=_fetch_command)

    start = actions.add_parser("start", help="start the broker in the background")
    start.add_argument(
        "--port", type=int, default=None, help="client port (default: free)"
    )
    start.add_argument(
        "--data-dir", type=Path, default=None, help="default: a temp dir"
    )
    start.add_argument(
        "--security-protocol", choices=SECURITY_PROTOCOLS, default="PLAINTEXT"
    )
    start.set_defaults(handler=_start_command)

    stop = actions.add_parser("stop", help="stop the broker and remove its temp dir")
    stop.add_argument("--keep-data-dir", action="store_true", help="keep its data dir")
    stop.set_defaults(handler=_stop_command)

    status = actions.add_parser("status", help="exit 0 when running, 1 when not")
    status.set_defaults(handler=_status_command)
