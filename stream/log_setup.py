"""Worker logging: one stderr handler, and the Kafka clients' repeats folded.

When a broker goes away, aiokafka and faust log the same error several times a
second for as long as it lasts: thousands of lines that bury the one that says
what happened. The filter here lets each distinct message of those libraries
through once per window and says how many repeats it held back.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

LIBRARIES = ("faust", "mode", "aiokafka")
REPEAT_WINDOW_SECONDS = 30.0


class RepeatFilter(logging.Filter):
    """Pass a library's message at most once per window; count the rest."""

    def __init__(
        self,
        window_seconds: float = REPEAT_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.window_seconds = window_seconds
        self.clock = clock
        # (logger, message template) -> (last time let through, repeats held back)
        self.seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """Decide whether a record is written (and mark it with held-back repeats)."""
        if not record.name.startswith(LIBRARIES):
            return True
        key = (record.name, str(record.msg))
        now = self.clock()
        last, held = self.seen.get(key, (float("-inf"), 0))
        if now - last < self.window_seconds:
            self.seen[key] = (last, held + 1)
            return False
        self.seen[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} [{held} more like this in the last window]"
        return True


def configure_logging(level: str) -> None:
    """Log to stderr at ``level``; faust and aiokafka stay at WARNING below DEBUG.

    Configuring logging here (instead of letting faust do it) keeps faust from
    setting the root logger to DEBUG, which costs a sizeable share of CPU.
    """
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    if level == "DEBUG":
        return
    for library in LIBRARIES:
        logging.getLogger(library).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RepeatFilter())
