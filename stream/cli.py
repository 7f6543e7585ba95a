"""The ``engagement-stream`` command line: one subcommand per job.

Each subcommand lives in the module that does the work; that module exposes
``add_parser(subparsers)`` which registers the subcommand and sets ``handler`` to
a function taking the parsed arguments and returning the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from aiokafka.errors import KafkaError

from stream.schemas import SchemaError
from stream.settings import SettingsError

# Modules that contribute a subcommand, imported lazily so that ``decode`` does
# not pay for faust's import time.
SUBCOMMAND_MODULES = (
    "stream.devbroker_cli",
    "stream.decode_cli",
    "stream.topics",
    "stream.worker",
    "stream.replay",
    "stream.consume",
    "stream.demo",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="engagement-stream",
        description="LivePerson engagement attributes as typed Avro topics.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand and return its exit code.

    Failures a user can fix (no broker, bad settings, a busy port, refused
    credentials) end as one line naming the command; anything else is a bug
    and keeps its traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_logging()
    try:
        code: int = args.handler(args)
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, as shell tools do.
        _silence_stdout()
        return 0
    except (KafkaError, OSError, SettingsError, SchemaError) as exc:
        reason = str(exc) or type(exc).__name__
        print(f"engagement-stream {args.command}: {reason}", file=sys.stderr)
        return 1
    return code


def _quiet_logging() -> None:
    """Warnings and errors only, for the short commands (the worker sets its own).

    aiokafka warns on every retry it makes and then succeeds (a "not leader"
    answer from a topic created a moment ago): noise for a person at a shell.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.ERROR)


def _silence_stdout() -> None:
    # Python flushes stdout again at exit; point it at /dev/null so that final
    # flush cannot raise a second BrokenPipeError.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
