"""Quiet, honest logs for long commands: a warning that repeats is said once, then counted.

`quiet_logs()` wraps a command (`reproduce`): every WARNING-or-worse record that repeats (the
same logger and message template) passes the first time and is counted after that; when the
command ends each repeated one is logged again once with its count. Progress bars go to a
terminal only: on a pipe or a file (CI, `2> log`) tqdm's carriage-return redraws are noise, so
bars are turned off there (`bars_on_terminals_only`), and log lines never tear a bar apart
(`tqdm.contrib.logging.logging_redirect_tqdm`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import warnings
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
def bars_on_terminals_only() -> Iterator[None]:
    """Within the block every tqdm bar follows tqdm's own `disable=None` rule: drawn on a terminal,
    off on a pipe or a file. Libraries pass `disable=False` themselves (lm-eval, huggingface_hub),
    which `TQDM_DISABLE` (read once, when tqdm is imported) cannot override."""
    from tqdm import std

    original = std.tqdm.__init__

    @functools.wraps(original)
    def init(self, *args, **kwargs):
        if not kwargs.get("disable"):
            kwargs["disable"] = None
        original(self, *args, **kwargs)

    std.tqdm.__init__ = init
    try:
        yield
    finally:
        std.tqdm.__init__ = original


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

    try:
        # The redirect swaps the console handlers for tqdm's: the filters go on the swapped ones.
        # Python warnings go through logging too (counted like the rest); libraries' deprecation
        # notices about their own internals are nothing a user of the command can act on.
        with bars_on_terminals_only(), logging_redirect_tqdm(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            logging.captureWarnings(True)
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
        logging.captureWarnings(False)
        for record, n in repeats.repeated():
            logging.getLogger(record.name).log(record.levelno, "%s (said %d times in all)",
                                               record.getMessage().splitlines()[0], n)
