"""`lm-eval-audio report RESULTS... --output DIR`: compare lm-eval output folders."""

from __future__ import annotations

import argparse
import logging

from lm_eval_audio.metrics.bootstrap import DEFAULT_RESAMPLES, SEED

logger = logging.getLogger(__name__)


def _pair(text: str) -> tuple[str, str]:
    spoken, sep, twin = text.partition("=")
    if not sep or not spoken or not twin:
        raise argparse.ArgumentTypeError(f"--pair wants SPOKEN_TASK=TEXT_TASK, got {text!r}")
    return spoken, twin


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the `report` subcommand."""
    parser.add_argument("results", nargs="+",
                        help="lm-eval --output_path folders or results_*.json files (folders are searched recursively)")
    parser.add_argument("-o", "--output", required=True, help="folder to write report.md/.csv/.html and paired.csv to")
    parser.add_argument("--pair", action="append", type=_pair, default=[], metavar="SPOKEN=TEXT",
                        help="pair a spoken task with its text twin (repeatable); by default "
                             "a spoken task pairs with its metadata text_twin, else spoken_mmlu* with mmlu_twin*")
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level of paired intervals")
    parser.add_argument("--bootstrap", type=int, default=DEFAULT_RESAMPLES, help="paired bootstrap resamples")
    parser.add_argument("--seed", type=int, default=SEED,
                        help="bootstrap seed (reports are reproducible; the default is the project's one seed, "
                             "as in WER's standard errors)")
    parser.add_argument("--no-references", action="store_true", help="leave out the published reference figures")
    parser.add_argument("--leaderboard-filter", default="choice",
                        help="filter of the leaderboard's MMLU columns when a task reports several "
                             "(default choice: the same extraction on text and speech; strict: the seed's rule)")


def run(args: argparse.Namespace) -> int:
    """Build and write the report; prints the leaderboard and the files, the HTML page's path last."""
    from lm_eval_audio.report import ReportOptions, build_report, write_report
    from lm_eval_audio.report.render import leaderboard_text

    if not 0 < args.confidence < 1:
        raise SystemExit(f"--confidence must be between 0 and 1, got {args.confidence}")
    if args.bootstrap < 100:
        raise SystemExit(f"--bootstrap must be at least 100 resamples, got {args.bootstrap}")
    opts = ReportOptions(pairs=tuple(args.pair), confidence=args.confidence, n_resamples=args.bootstrap,
                         seed=args.seed, references=not args.no_references,
                         leaderboard_filter=args.leaderboard_filter)
    report = build_report(args.results, opts)
    outputs = write_report(report, args.output)
    for note in report.notes:
        logger.warning("%s", note)
    print(leaderboard_text(report, outputs))
    return 0
