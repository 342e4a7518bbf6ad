"""Serve-backed vs local: the same spoken task through `transformers serve` and in-process.

Run from the repository root (needs the serving extra; the seed's MMLU items ship with the package):

    python -m bench.serve                  # random `small` checkpoint, 8 items, 3 repetitions, 24 new tokens
    python -m bench.serve --quick          # tiny checkpoint, 4 items, 1 repetition, no warm-up

One process builds (or takes, `--model-dir`) a random Qwen2-Audio checkpoint, starts
`transformers serve` on it (127.0.0.1, CPU, `--threads` threads) and builds the requests of
`spoken_mmlu_seed` with lm-eval's own task machinery, chat-formatted as
`--apply_chat_template` does, once for each model class. It then times `generate_until` on the
same requests for `audio-chat-completions` at num_concurrent 1, 4 and 8 and for the local
`qwen2audio` class (batch 1 and 8) on the same checkpoint, warmed up, alternating repetitions,
medians (`bench._harness.measure`). The server is idle while the local class runs and the other
way round, so neither steals the other's cores. Ratios are against local batch 1; answers are
compared with local batch 1's.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from bench._harness import Case, measure, table

logger = logging.getLogger("bench.serve")

TASK = "spoken_mmlu_seed"


def _requests(lm, n_items: int, max_gen_toks: int) -> list:
    """The task's requests as lm-eval's evaluator builds them for `lm` (chat template applied)."""
    from lm_eval.tasks import TaskManager

    from lm_eval_audio.files import tasks_dir

    task = TaskManager(include_defaults=False, include_path=str(tasks_dir())).load([TASK])["tasks"][TASK]
    task.build_all_requests(limit=n_items, apply_chat_template=True, chat_template=lm.apply_chat_template)
    out = []
    for inst in task.instances:
        inst.arguments = (inst.arguments[0], dict(inst.arguments[1], max_gen_toks=max_gen_toks), *inst.arguments[2:])
        out.append(inst)
    return out


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print the table, return (and optionally write) the figures."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", type=Path, help="an existing Qwen2-Audio checkpoint (default: build one)")
    p.add_argument("--size", default="small", choices=("tiny", "small"))
    p.add_argument("--items", type=int, default=8)
    p.add_argument("--max-gen-toks", type=int, default=24)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="torch threads, for the local class and the server")
    p.add_argument("--concurrency", default="1,4,8")
    p.add_argument("--quick", action="store_true", help="tiny checkpoint, 4 items, 1 repetition, no warm-up")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.items, args.reps = "tiny", 4, 1
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    os.environ.setdefault("LM_EVAL_AUDIO_SYNTH", "1")

    from lm_eval_audio.models.audio_chat import AudioChatCompletions
    from lm_eval_audio.models.qwen2audio import Qwen2AudioLM
    from lm_eval_audio.serve.launch import transformers_serve
    from lm_eval_audio.tiny.qwen2_audio import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model_dir or build_tiny_model(Path(tmp) / "model", size=args.size)
        with transformers_serve(model_dir, Path(tmp) / "serve.log", threads=args.threads) as url:
            local = {b: Qwen2AudioLM(pretrained=str(model_dir), device="cpu", batch_size=b) for b in (1, 8)}
            local_reqs = _requests(local[1], args.items, args.max_gen_toks)
            concurrency = [int(x) for x in args.concurrency.split(",")]
            served = {n: AudioChatCompletions(model=str(model_dir), base_url=f"{url}/v1", num_concurrent=n,
                                              send_stop=False) for n in concurrency}
            served_reqs = _requests(served[concurrency[0]], args.items, args.max_gen_toks)
            cases = [Case(f"local qwen2audio, batch {b}", (lambda lm=lm: lm.generate_until(local_reqs, True)),
                          items=len(local_reqs), baseline=None if b == 1 else "local qwen2audio, batch 1")
                     for b, lm in local.items()]
            cases += [Case(f"transformers serve, num_concurrent {n}", (lambda lm=lm: lm.generate_until(served_reqs, True)),
                           items=len(served_reqs), baseline="local qwen2audio, batch 1") for n, lm in served.items()]
            load_before = os.getloadavg()
            measure(cases, reps=args.reps, warmup=not args.quick)
            load_after = os.getloadavg()

    by_name = {c.name: c for c in cases}
    reference = by_name["local qwen2audio, batch 1"].output
    rows, report = [], {"cases": {}}
    for c in cases:
        base = by_name.get(c.baseline) if c.baseline else None
        ratio = f"{base.median_s / c.median_s:.2f}x vs {base.name}" if base else "(baseline)"
        same = sum(a == b for a, b in zip(c.output, reference))
        rows.append([c.name, f"{c.items / c.median_s:.3f}", f"{c.median_s:.2f}", ratio, f"{same}/{len(reference)}"])
        report["cases"][c.name] = {"seconds": c.seconds, "items_per_s": c.items / c.median_s,
                                   "answers_equal_local_b1": same}
    report.update(items=args.items, max_gen_toks=args.max_gen_toks, reps=args.reps, threads=args.threads,
                  size=args.size if not args.model_dir else str(args.model_dir), load=[load_before, load_after],
                  machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
                  date=time.strftime("%Y-%m-%d"))
    print(f"{TASK}, {args.items} items, {args.max_gen_toks} new tokens at most, greedy; "
          f"{args.size} checkpoint, {args.threads} threads; load {load_before[0]:.1f} -> {load_after[0]:.1f}")
    print(table(rows, ["configuration", "items/s", "median s", "ratio", "answers = local batch 1"]))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
