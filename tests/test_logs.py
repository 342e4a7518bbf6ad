"""Quiet logs for long commands: a repeated warning once, then its count; moot ones dropped."""

from __future__ import annotations

import io
import logging

from tqdm import tqdm

from lm_eval_audio.logs import quiet_logs


def test_repeated_warning_is_said_once_with_its_count(caplog):
    log = logging.getLogger("lm_eval_audio.some_metric")
    with caplog.at_level(logging.INFO):  # caplog's handler is on the root logger, as a console's is
        with quiet_logs(muted=(("lm_eval", "Custom kwargs can be passed"),)):
            for task in ("a", "b", "c"):
                log.warning("exact_match_answered: none of %d items was answered (%s)", 200, task)
                logging.getLogger("lm_eval.api.task").warning(f"{task}: Custom kwargs can be passed to x")
            log.info("an info line")
            log.info("an info line")
            assert tqdm(range(3), disable=False).disable  # a pipe, not a terminal: no bars, whatever lm-eval asks
    lines = [r.getMessage() for r in caplog.records]
    assert lines.count("exact_match_answered: none of 200 items was answered (a)") == 1
    assert not any("(b)" in line or "(c)" in line for line in lines)
    assert "exact_match_answered: none of 200 items was answered (a) (said 3 times in all)" in lines
    assert not any("Custom kwargs" in line for line in lines)  # moot for the command: dropped
    assert lines.count("an info line") == 2  # below WARNING: every line, as logged
    assert not tqdm(range(3), disable=False, file=io.StringIO()).disable  # restored after the command
