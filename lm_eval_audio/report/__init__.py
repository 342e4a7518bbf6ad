"""Leaderboard-style comparison of lm-eval result folders.

load (results and per-sample files) -> compare (rows, columns, paired views, notes)
-> render (Markdown, CSV, HTML with plots). `stats` holds the paired statistics.
"""

from lm_eval_audio.report.compare import Report, ReportOptions, build_report
from lm_eval_audio.report.render import Outputs, write_report

__all__ = ["Report", "ReportOptions", "build_report", "Outputs", "write_report"]
