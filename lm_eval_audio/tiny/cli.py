"""`lm-eval-audio make-tiny-model DIR [--arch MODEL_TYPE] [--size tiny|small]`."""

from __future__ import annotations

import argparse

from lm_eval_audio.tiny.archs import BUILDERS, ArchUnavailable, build_arch
from lm_eval_audio.tiny.qwen2_audio import SIZES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The subcommand's arguments."""
    parser.add_argument("output_dir", help="directory to write the checkpoint to")
    parser.add_argument("--arch", choices=list(BUILDERS), default="qwen2_audio",
                        help="architecture (default qwen2_audio; --size small exists for qwen2_audio only)")
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    """Build the checkpoint; an architecture that cannot be built here exits naming why."""
    try:
        build_arch(args.output_dir, arch=getattr(args, "arch", "qwen2_audio"), size=args.size, seed=args.seed)
    except ArchUnavailable as err:
        raise SystemExit(f"make-tiny-model: {err}") from err
    return 0
