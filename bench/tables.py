"""Write a saved `bench.throughput` run into README.md's Benchmarks table and bench/README.md's
latest results, so both come from one run and say its command, machine and load:

    python -m bench.throughput --json out.json && python -m bench.tables out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.throughput import readme_table, render

REPO = Path(__file__).resolve().parents[1]
EARLIER = "Earlier runs"  # bench/README.md: where the latest run's text ends


def readme_section(report: dict) -> str:
    """The README's Benchmarks text: the run, its machine and load, the table, how to read it."""
    m = report["machine"]
    loads = (m["load_avg_start"][0], m.get("load_avg_end", m["load_avg_start"])[0])
    # The run's own threads account for up to `torch_threads` of the load average.
    busy = max(loads) > m["logical_cpus"] + 0.5
    load = (f"**load average {loads[0]:.1f} -> {loads[1]:.1f} on {m['logical_cpus']} CPUs: shared with other jobs, "
            "so every time is inflated and the ratios are indicative only**" if busy
            else f"load average {loads[0]:.1f} -> {loads[1]:.1f}")
    intro = (f"`{report['command']}` ({report['date']}; random `{report['size']}` checkpoint, "
             f"{report['params_m']:.1f} M parameters; {m['cpu']}, {m['logical_cpus']} CPUs, torch {m['torch']}, "
             f"{m['torch_threads']} threads; {load}; medians of {report['reps']} alternating repetition(s); the full "
             "table, the compute floor's method and the time breakdown are in `bench/README.md`):")
    after = ("`/ floor` is the class's time over the compute floor's (`bench/floor.py`: transformers' own encoder "
             "once per clip on its own length, the language model once per context, the LM head on the scored "
             "positions only; for generation, each prompt alone, then the greedy decode steps batched at the "
             "floor's best batch size; the sum of those parts, each timed alone): the goal is at most 1.15. "
             "Timings on this shared 2-core machine vary by about 10% between runs of the same code (`qwen2audio` "
             "and `hf-audio` run the same path), so a ratio near 1 is equality within that. Peak MiB is the RSS growth during one run. Both tables are written "
             "from one run's JSON by `python -m bench.tables out.json`.")
    r = report.get("ratios", {})
    if "gen_best_hf_audio_speedup_vs_hf_audio_batch1" in r and "gen_best_floor_speedup_vs_floor_batch1" in r:
        after += (f" Batching: `hf-audio`'s best batch is {r['gen_best_hf_audio_speedup_vs_hf_audio_batch1']:.2f}x its "
                  f"batch 1 (`qwen2audio`, the same path: {r['gen_best_qwen2audio_speedup_vs_qwen2audio_batch1']:.2f}x); "
                  f"the compute floor's best batch is {r['gen_best_floor_speedup_vs_floor_batch1']:.2f}x its batch 1: "
                  "about what batching can gain at all on this CPU for this checkpoint, as each prompt's prefill "
                  "runs alone.")
    return f"{intro}\n\n{readme_table(report)}\n\n{after}\n\n"


def update(report: dict, repo: Path = REPO) -> None:
    """Rewrite the two tables in place (README.md and bench/README.md under `repo`)."""
    readme = repo / "README.md"
    s = readme.read_text()
    a = s.index("## Benchmarks\n\n") + len("## Benchmarks\n\n")
    b = s.index("`python -m bench.serve")
    readme.write_text(s[:a] + readme_section(report) + s[b:])

    bench = repo / "bench" / "README.md"
    s = bench.read_text()
    a = s.index("## Latest results (CPU)\n\n") + len("## Latest results (CPU)\n\n")
    b = s.index(EARLIER, a)
    bench.write_text(s[:a] + "Latest run:\n\n" + render(report) + "\n\n" + s[b:])


def main(argv: list[str] | None = None) -> int:
    """Update both READMEs from a saved run."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("json", type=Path, help="a run saved by `python -m bench.throughput --json`")
    args = p.parse_args(argv)
    update(json.loads(args.json.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
