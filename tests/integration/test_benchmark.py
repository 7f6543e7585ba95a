"""The benchmark command runs end to end on a small input and prints its line."""

import math
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAST_LINE = re.compile(
    r"bench: decode_vs_json=(\S+) e2e_vs_reference=(\S+) scaleout=(\S+) rss_mb=(\d+)"
)


def test_benchmark_prints_its_ratios(kafka_bootstrap: str) -> None:
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            "--records",
            "4000",
            "--e2e-records",
            "12000",
            "--cycles",
            "1",
        ],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]

    report = run.stdout  # shown by every assertion below when it fails
    lines = report.strip().splitlines()
    match = LAST_LINE.fullmatch(lines[-1])
    assert match, report
    decode_vs_json, e2e, scaleout, rss_mb = (float(x) for x in match.groups())
    # Sizes, not speed: a tiny, noisy run still decodes and publishes. A pair
    # may finish before both workers are ever busy at once: NaN, by design.
    assert 0.5 < decode_vs_json < 20, report
    assert e2e > 0, report
    assert scaleout > 0 or math.isnan(scaleout), report
    assert 20 < rss_mb < 2000, report
    # The table's last column: outputs. The reference and one worker publish the
    # same; a pair may repeat a few dead letters of records its rebalance
    # redelivered (at least once), but loses nothing.
    outputs = {
        line.split()[0]: int(line.split()[-1])
        for line in lines
        if line.startswith(("ref ", "worker ", "pair "))
    }
    assert outputs["ref"] == outputs["worker"] > 0, report
    assert outputs["ref"] <= outputs["pair"] <= outputs["ref"] + 10, report
