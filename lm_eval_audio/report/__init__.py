"""Leaderboard-style comparison of lm-eval result folders.

load (results files -> runs; `model_config` + `protocol`: what makes a row) -> compare (cells,
notes) -> views (which cells to pair: backbone, speech vs text, adapter, control, ASR) -> pairs
(items paired by identity through `items`, statistics from `stats`) -> leaderboard / seed /
ladder (the seed study's tables and figure) -> render (Markdown, CSV, HTML with `plots`).
"""

from lm_eval_audio.report.compare import Report, ReportOptions, build_report
from lm_eval_audio.report.render import Outputs, write_report

__all__ = ["Report", "ReportOptions", "build_report", "Outputs", "write_report"]
