"""Quiet, honest logs for long commands: a warning that repeats is said once, then counted.

`quiet_logs()` wraps a command (`reproduce`): every WARNING-or-worse record that repeats (the
same logger and message template) passes the first time and is counted after that; when the
command ends each repeated one is logged again once with its count. Progress bars go to a
terminal only: on a pipe or a file (CI, `2> log`) tqdm's carriage-return redraws are noise, so
bars are turned off there (tqdm's own `TQDM_DISABLE`), and log lines never tear a bar apart
(`tqdm.contrib.logging.logging_redirect_tqdm`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections import Counter
from collections.abc import Iterator

logger = logging.getLogger(__name__)


class RepeatFilter(logging.Filter):
    """Lets the first WARNING+ record of each (logger, message template) through and counts the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter = Counter()
        self.first: dict[tuple, logging.LogRecord] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        # One record reaches every handler: it is counted once, and each handler decides alike.
        decided = getattr(record, "_said_before", None)
        if decided is not None:
            return not decided
        key = (record.name, str(record.msg))
        self.counts[key] += 1
        record._said_before = self.counts[key] > 1
        if not record._said_before:
            self.first[key] = record
        return not record._said_before

    def repeated(self) -> list[tuple[logging.LogRecord, int]]:
        """(first record, times in all) of every warning said more than once."""
        return [(self.first[k], n) for k, n in self.counts.items() if n > 1]


@contextlib.contextmanager
def quiet_logs(*, muted: tuple[tuple[str, str], ...] = ()) -> Iterator[RepeatFilter]:
    """Within the block: repeated warnings once with a count (logged at the end), progress bars
    only on a terminal, logs written around the bars. `muted` holds (logger prefix, message part) pairs
    of warnings the command has made moot (dropped, not counted)."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    repeats = RepeatFilter()

    def moot(record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not any(record.name.startswith(name) and part in message for name, part in muted)

    bars_off = not sys.stderr.isatty() and "TQDM_DISABLE" not in os.environ
    if bars_off:
        os.environ["TQDM_DISABLE"] = "1"
    try:
        # The redirect swaps the console handlers for tqdm's: the filters go on the swapped ones.
        with logging_redirect_tqdm():
            handlers = list(logging.getLogger().handlers)
            for h in handlers:
                h.addFilter(moot)
                h.addFilter(repeats)
            try:
                yield repeats
            finally:
                for h in handlers:
                    h.removeFilter(repeats)
                    h.removeFilter(moot)
    finally:
        if bars_off:
            os.environ.pop("TQDM_DISABLE", None)
        for record, n in repeats.repeated():
            logging.getLogger(record.name).log(record.levelno, "%s (said %d times in all)",
                                               record.getMessage().splitlines()[0], n)
