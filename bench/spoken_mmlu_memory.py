"""Peak memory of a spoken-MMLU run against the number of items (it should stay flat).

Each point is a separate `lm_eval --model qwen2audio --tasks spoken_mmlu --limit N` process
(N documents per subject, so 57*N items) on a tiny random checkpoint; its peak RSS
(`ru_maxrss`) is printed next to what the same clips would take if requests held decoded
16 kHz float32 arrays, the way lm-eval's audio tasks usually pass them.

    python bench/spoken_mmlu_memory.py --mmlu-path ../shared/data/mmlu --limits 1 4 16

Clips are synthesised with espeak into $LM_EVAL_AUDIO_TTS_CACHE (default: a folder under the
output dir) by `lm-eval-audio synth` first, so the measured runs only evaluate.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path


def _one(args) -> None:
    # Runs inside the measured child: the whole lm_eval run in this process, then its peak RSS.
    from lm_eval.__main__ import cli_evaluate

    sys.argv = ["lm_eval", "--model", "qwen2audio", "--model_args", f"pretrained={args.model}",
                "--device", "cpu", "--batch_size", "8", "--tasks", "spoken_mmlu", "--limit", str(args.one),
                "--metadata", json.dumps({"mmlu_path": args.mmlu_path})]
    cli_evaluate()
    print("PEAK_RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mmlu-path", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mmlu"))
    p.add_argument("--limits", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--out", default="bench_out/spoken_mmlu_memory")
    p.add_argument("--model", default=None, help="checkpoint dir (default: build the tiny one)")
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one is not None:
        return _one(args)

    import soundfile as sf

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env.setdefault("LM_EVAL_AUDIO_TTS_CACHE", str(out / "clips"))
    if args.model is None:
        from lm_eval_audio.tiny.qwen2_audio import build_tiny_model

        args.model = str(build_tiny_model(out / "tiny", size="tiny"))
    rows = []
    for n in args.limits:
        subprocess.run([sys.executable, "-m", "lm_eval_audio.cli", "synth", "--task", "spoken_mmlu",
                        "--limit", str(n), "--mmlu-path", args.mmlu_path], env=env, check=True)
        proc = subprocess.run([sys.executable, __file__, "--one", str(n), "--model", args.model,
                               "--mmlu-path", args.mmlu_path], env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-3000:])
        peak_kb = int(proc.stdout.split("PEAK_RSS_KB")[-1].split()[0])
        seconds = sum(sf.info(str(f)).duration for f in Path(env["LM_EVAL_AUDIO_TTS_CACHE"]).rglob("*.flac"))
        rows.append({"per_subject": n, "items": 57 * n, "peak_rss_mb": round(peak_kb / 1024, 1),
                     "eager_float32_mb": round(seconds * 16000 * 4 / 2**20, 1)})
        print(json.dumps(rows[-1]), flush=True)
    (out / "results.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
