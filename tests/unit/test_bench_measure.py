"""The benchmark's own arithmetic: which samples a rate is taken over."""

import math
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import measure  # noqa: E402
from measure import Sample  # noqa: E402


def samples(rows: list[tuple[float, int, tuple[float, ...]]]) -> list[Sample]:
    """Samples from (time, outputs, CPU seconds per process) rows."""
    return [Sample(at, out, sum(cpus), cpus) for at, out, cpus in rows]


def test_the_rate_is_taken_only_while_every_process_works() -> None:
    rows = []
    # 0-1 s: both idle (joining). 1-3 s: both busy, 1,000 outputs a second.
    # 3-5 s: the second process has run out of work, 400 outputs a second.
    cpu_a = cpu_b = 0.0
    outputs = 0
    for tenth in range(51):
        at = tenth / 10
        if 1.0 < at <= 3.0:
            cpu_a += 0.09
            cpu_b += 0.09
            outputs += 100
        elif at > 3.0:
            cpu_a += 0.09
            outputs += 40
        rows.append((at, outputs, (cpu_a, cpu_b)))

    result = measure.summarize(samples(rows), stable_at=0.0, processes=2)

    assert result.outputs == 2800
    # every sample in the window gained 100 outputs per 0.1 s
    assert round(result.events_per_second) == 1000
    assert round(result.cpu_us_per_event) == 1800  # 1.8 cores per 1,000/s
    # the whole run: 2,800 outputs from the first (1.1 s) to the last (5.0 s)
    assert round(result.whole_run_events_per_second) == round(2800 / 3.9)


def test_a_run_too_short_to_time_has_no_rate() -> None:
    rows = [(t / 10, t, (0.0,)) for t in range(10)]
    result = measure.summarize(samples(rows), stable_at=0.0, processes=1)
    assert math.isnan(result.events_per_second)
    assert result.outputs == 9
