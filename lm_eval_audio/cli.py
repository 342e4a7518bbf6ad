"""`lm-eval-audio` command line: one subcommand per module that owns the work.

Each subcommand module exposes `add_arguments(parser)` and `run(args) -> int`, and keeps its
heavy imports (torch, transformers) inside `run`, so `--help` stays fast. Subcommands of other
packages (`finetune`, `merge` from the finetune package) come from entry points (`plugins.py`):
this package never imports them by name.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from lm_eval_audio import plugins

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "make-tiny-model": ("lm_eval_audio.tiny.cli", "build a random tiny checkpoint of an audio LLM offline"),
    "archs": ("lm_eval_audio.archs_cli", "every audio LLM architecture of the installed transformers: supported or refused"),
    "synth": ("lm_eval_audio.tts.cli", "synthesise the speech clips of a spoken task"),
    "speak": ("lm_eval_audio.twin.cli", "write the spoken twin of any lm-eval task, paired item by item with it"),
    "report": ("lm_eval_audio.report.cli", "compare lm-eval result folders in one report"),
    "reproduce": ("lm_eval_audio.reproduce", "run the seed study's experiments and report"),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(prog="lm-eval-audio", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    table = dict(SUBCOMMANDS)
    for name, module_name in plugins.commands().items():
        table.setdefault(name, (module_name, None))
    for name, (module_name, help_text) in table.items():
        module = importlib.import_module(module_name)
        help_text = help_text or getattr(module, "HELP", name)
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `lm-eval-audio` script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
