"""The decode subcommand over the corpus, files, stdin and bad arguments."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stream.cli import main
from tests.unit.conftest import (
    EDGE,
    SAMPLE_FILES,
    as_multiset,
    edge_expected,
    sample_expected,
)

EXPECTED = edge_expected()


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    assert main(["decode", *argv]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.mark.parametrize("version", [1, 2])
def test_sample_file_gives_every_distinct_event_once(
    version: int, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = run(["--api-version", str(version), str(SAMPLE_FILES[version])], capsys)
    wanted = [event for entry in sample_expected(version) for event in entry["emit"]]

    assert as_multiset(line["event"] for line in lines) == as_multiset(wanted)
    assert all(set(line) == {"event"} for line in lines)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_edge_file_through_the_cli(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    want = EXPECTED[name]
    lines = run(["--api-version", str(want["apiVersion"]), str(EDGE / name)], capsys)

    events = [line["event"] for line in lines if "event" in line]
    dead_letters = [line["deadLetter"] for line in lines if "deadLetter" in line]
    assert as_multiset(events) == as_multiset(want["emit"])
    assert as_multiset(dead_letters) == as_multiset(want["deadLetters"])


def test_inferred_version_is_written_on_every_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = run([str(SAMPLE_FILES[1]), str(EDGE / "v2-truncated.json")], capsys)

    assert {line["apiVersion"] for line in lines if "event" in line} == {1}
    assert lines[-1] == {
        "deadLetter": {"level": "record", "reason": "invalid_json"},
        "apiVersion": 1,
    }


def test_a_json_file_is_one_record_even_with_newlines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = json.dumps(json.loads((EDGE / "v2-negative-lead-value.json").read_text()))
    (tmp_path / "one.json").write_text(record.replace(", ", ",\n\n"))
    (tmp_path / "bad.json").write_bytes(b'{"info":\n\xff\n}')

    lines = run([str(tmp_path / "one.json"), str(tmp_path / "bad.json")], capsys)

    assert [next(iter(line)) for line in lines] == ["event", "deadLetter"]


def test_jsonl_splits_on_line_feed_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = (EDGE / "v2-negative-lead-value.json").read_bytes()
    flat = json.dumps(json.loads(record)).replace("Lead", "Lead\u2028x").encode()
    (tmp_path / "in.jsonl").write_bytes(flat + b"\r\n\n" + b"{\r\n")

    lines = run([str(tmp_path / "in.jsonl")], capsys)

    assert len(lines) == 2
    assert lines[1]["deadLetter"]["reason"] == "invalid_json"


def test_events_are_distinct_across_files(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(EDGE / "v2-negative-lead-value.json")

    assert len(run([path, path], capsys)) == 1


def test_stdin_is_read_without_paths(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = SAMPLE_FILES[2].read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))

    lines = run(["--api-version", "2"], capsys)

    assert len(lines) == sum(len(e["emit"]) for e in sample_expected(2))


def test_unreadable_file_is_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["decode", str(tmp_path / "missing.jsonl")]) == 2

    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "missing.jsonl" in error


def test_bad_version_is_exit_2() -> None:
    with pytest.raises(SystemExit) as caught:
        main(["decode", "--api-version", "3"])

    assert caught.value.code == 2


def test_subprocess_run() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stream.cli",
            "decode",
            str(EDGE / "v2-nan-infinity.json"),
        ],
        capture_output=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )

    assert done.returncode == 0, done.stderr
    # An unparseable record gives no version hint: the API default, 1, is used.
    assert json.loads(done.stdout) == {
        "deadLetter": {"level": "record", "reason": "non_finite_number"},
        "apiVersion": 1,
    }
