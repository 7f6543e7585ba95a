"""The ``decode`` subcommand: records from files or stdin to JSON Lines on stdout.

Each output line is ``{"event": <canonical event>}`` or ``{"deadLetter": {...}}``.
Events are distinct across the whole invocation. Without ``--api-version`` the
version is inferred per record (``unAuthSdes`` present means 2, else 1) and
every line also carries ``"apiVersion"``, the version used for its record.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stream.decoder import decode_record
from stream.dedupe import Deduplicator
from stream.events import DecodeResult

# Line content that holds no record (a blank line, the end of a final newline).
_BLANK = b" \t\r"


def add_parser(subparsers: Any) -> None:
    """Register ``decode`` on the CLI's subparsers."""
    parser = subparsers.add_parser(
        "decode",
        help="decode conversation records to canonical events and dead letters",
        description=(
            "Read conversation records (JSON Lines; a .json file is one record;"
            " no PATH or '-' reads stdin) and write one JSON object per line."
        ),
    )
    parser.add_argument(
        "--api-version",
        type=int,
        choices=(1, 2),
        help="Messaging Interactions API version of the records (default: infer)",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="input files")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Decode every record named by the arguments; 2 if an input is unreadable."""
    deduplicator = Deduplicator()
    out = sys.stdout
    for path in args.paths or ["-"]:
        try:
            records = read_records(path)
        except OSError as exc:
            out.flush()
            print(
                f"engagement-stream decode: cannot read {path}: {exc}", file=sys.stderr
            )
            return 2
        for record in records:
            result = decode_record(record, args.api_version)
            for line in output_lines(result, deduplicator, args.api_version is None):
                out.write(line + "\n")
    out.flush()
    return 0


def read_records(path: str) -> list[bytes]:
    """The raw records of one input: a .json file whole, else one per line.

    Raises:
        OSError: the input cannot be read.
    """
    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        mode = os.stat(path).st_mode
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            # /dev/zero or a disk would be read without end.
            raise OSError(f"{path}: a device, not a file of records")
        data = Path(path).read_bytes()
        if path.endswith(".json"):
            return [data]
    # JSON Lines split on LF only: other line breaks may sit inside strings.
    return [line for line in data.split(b"\n") if line.strip(_BLANK)]


def output_lines(
    result: DecodeResult, deduplicator: Deduplicator, say_version: bool
) -> Iterator[str]:
    """The JSON lines for one record's result, first copies of events only."""
    extra = {"apiVersion": result.api_version} if say_version else {}
    for event in deduplicator.distinct(result.events):
        yield _json_line({"event": event.to_json(), **extra})
    for dead_letter in result.dead_letters:
        yield _json_line({"deadLetter": dead_letter.to_json(), **extra})


def _json_line(value: dict[str, Any]) -> str:
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # An unpaired surrogate (in a rejected sdeType) has no UTF-8 form.
        text = json.dumps(value)
    return text
