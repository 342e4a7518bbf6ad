"""How often a 2-rank gloo run aborts at exit, with and without the plugin's exit handler.

Each launch is torchrun with two CPU ranks that do what lm-eval's evaluator does with the
group (an all_gather, then a gather_object to rank 0) and exit. Without the handler, some exits
abort in interpreter finalisation (SIGABRT, "terminate called without an active exception").

    python -m bench.gloo_exit --launches 40
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from tqdm import tqdm

RANK_SCRIPT = textwrap.dedent("""
    import sys
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    if sys.argv[1] == "handler":
        from lm_eval_audio.models.process_group import close_gloo_group_at_exit
        close_gloo_group_at_exit()
    rank, size = dist.get_rank(), dist.get_world_size()
    out = [torch.empty(4) for _ in range(size)]
    dist.all_gather(out, torch.ones(4) * rank)
    dist.gather_object({"rank": rank, "x": list(range(1000))}, [None] * size if rank == 0 else None, dst=0)
""")


def count_aborts(mode: str, launches: int, first_port: int, script: Path) -> tuple[int, str]:
    """Launches that did not exit cleanly, and the last failing launch's output tail."""
    failed, tail = 0, ""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for i in tqdm(range(launches), desc=f"2-rank gloo launches, {mode}"):
        proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                               "--master_port", str(first_port + i), str(script), mode],
                              capture_output=True, text=True, timeout=120, env=env)
        if proc.returncode != 0:
            failed += 1
            tail = (proc.stdout + proc.stderr)[-600:]
    return failed, tail


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launches", type=int, default=40, help="launches per mode")
    parser.add_argument("--port", type=int, default=29600, help="first rendezvous port")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "rank.py"
        script.write_text(RANK_SCRIPT)
        for offset, mode in enumerate(("no-handler", "handler")):
            failed, tail = count_aborts(mode, args.launches, args.port + offset * args.launches, script)
            print(f"{mode:>10}: {failed}/{args.launches} launches aborted at exit")
            if "terminate called" in tail:
                print(f"{'':>12}(last: terminate called without an active exception)")


if __name__ == "__main__":
    main()
