"""Wall time of `lm-eval-audio reproduce --preset archs`: every architecture here, cold start to report.

Run from the repository root, offline:

    python -m bench.archs_preset                     # the preset's default --limit, a fresh output folder
    python -m bench.archs_preset --limit 5 --json out.json

Runs the command as a user would (a fresh process: imports, tiny checkpoint builds, espeak speech,
each architecture's run, the report) into a new temporary folder with its own speech cache, and
reports its wall time, its CPU time (user + system of the process and its children) and the load
average before and after. The preset runs torch on one thread, so on an otherwise idle machine its
wall time is close to its CPU time; on a shared machine the wall time grows with the load, which is
why both are printed. Per architecture: the time from the previous run's results file (the first: from the start, so
imports and every build) to its own; after the last, the report.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _results_times(runs: Path) -> dict[str, float]:
    """Architecture -> mtime of its results file."""
    out = {}
    for folder in sorted(runs.iterdir()):
        files = sorted(folder.rglob("results_*.json"))
        if files:
            out[folder.name] = files[-1].stat().st_mtime
    return out


def main(argv: list[str] | None = None) -> dict:
    """Run the preset once; print and return the figures."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, default=None, help="documents per task (default: the preset's own)")
    p.add_argument("--archs", default="", help="comma-separated model types (default: every one served here)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="archs-preset-") as tmp:
        out = Path(tmp) / "out"
        env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                   LM_EVAL_AUDIO_TTS_CACHE=str(Path(tmp) / "tts"))
        cmd = [sys.executable, "-m", "lm_eval_audio.cli", "reproduce", "--preset", "archs", "--output", str(out)]
        cmd += ["--limit", str(args.limit)] if args.limit is not None else []
        cmd += ["--archs", args.archs] if args.archs else []
        load_before = os.getloadavg()
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.time()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.time() - start
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-4000:])
            raise SystemExit(f"the preset failed (exit {proc.returncode})")
        stamps = _results_times(out / "runs")
        previous, per_arch = start, {}
        for arch, stamp in sorted(stamps.items(), key=lambda kv: kv[1]):
            per_arch[arch] = round(stamp - previous, 1)
            previous = stamp
        figures = {
            "command": " ".join(cmd[2:]),
            "architectures": list(per_arch),
            "wall_s": round(wall, 1),
            "cpu_s": round((cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime), 1),
            "seconds_per_architecture": per_arch,
            "after_last_run_s": round(start + wall - previous, 1),  # the report, and the process's exit
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "cpus": os.cpu_count(),
        }
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return figures


if __name__ == "__main__":
    main()
