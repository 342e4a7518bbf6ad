"""Does installing lm-eval-audio change lm-eval? Its own test suite and Python's start-up, without and with.

Two throwaway environments that differ only in the plugin:

- `without`: a venv (no pip) whose one `.pth` puts the base interpreter's site-packages on the
  path as a plain directory. A path line does not process the `.pth` files inside that folder,
  so an `lm_eval_audio.pth` installed there (this machine has one) never runs: torch,
  transformers and lm-eval import as usual, and nothing of the plugin loads.
- `with`: the same, plus what an editable install of this checkout writes: a path line to the
  checkout and the checkout's `lm_eval_audio.pth`.

Then, in each: lm-eval's own test suite (from its sdist, which carries `tests/`; run offline with
`python -P`, so the installed lm-eval is the one tested), and `python -c pass` timed and its
modules counted. It prints both summaries and every test whose outcome differs; the goal is none.

    pip download --no-binary :all: --no-deps lm-eval==0.4.13 -d /tmp/lm_eval_sdist
    python bench/lm_eval_with_plugin.py --sdist /tmp/lm_eval_sdist/lm_eval-0.4.13.tar.gz
    python bench/lm_eval_with_plugin.py --sdist ... --startup-only      # seconds, not minutes
    python bench/lm_eval_with_plugin.py --sdist ... --startup-only --before /tmp/before  # and an older checkout

Not part of this repository's test suite: lm-eval's suite takes minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "NO_COLOR": "1"}


def base_site_packages() -> list[str]:
    """The base interpreter's site-packages folders (where torch, transformers and lm-eval live)."""
    paths = sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_prefix})
    return sorted({paths["purelib"], paths["platlib"]})


def make_env(root: Path, plugin: Path | None) -> Path:
    """A venv at `root` seeing the base site-packages as plain folders; with the two `.pth` files
    of an editable install of the checkout `plugin`, if given. Returns its python."""
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", "--clear", str(root)], check=True)
    python = root / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "zz_base_site_packages.pth").write_text("".join(f"{p}\n" for p in base_site_packages()))
    if plugin is not None:
        (site / "_editable_impl_lm_eval_audio.pth").write_text(f"{plugin}\n")
        (site / "lm_eval_audio.pth").write_text((plugin / "lm_eval_audio.pth").read_text())
    return python


def startup(pythons: dict[str, Path], runs: int) -> dict[str, dict]:
    """Per environment: median and minimum wall time and CPU time (user + system, which a busy
    machine disturbs less) of `python -c pass` over `runs` starts (the environments take turns,
    so a change in the machine's load hits both alike), and the modules a start imports."""
    # As on a normal machine, the plugin's two start-up modules run from their bytecode cache,
    # written by a first start (where PYTHONDONTWRITEBYTECODE is set, each start compiles them).
    env = {k: v for k, v in {**os.environ, **OFFLINE}.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for python in pythons.values():
        subprocess.run([str(python), "-c", "pass"], check=True, env=env)
    times: dict[str, list[float]] = {label: [] for label in pythons}
    cpu: dict[str, list[float]] = {label: [] for label in pythons}
    for _ in range(runs):
        for label, python in pythons.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run([str(python), "-c", "pass"], check=True, env=env)
            times[label].append(time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[label].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    probe = ("import sys; print(len(sys.modules), 'lm_eval_audio._boot' in sys.modules, "
             "'lm_eval_audio._hook' in sys.modules)")
    out = {}
    for label, python in pythons.items():
        modules, boot, hook = subprocess.run([str(python), "-c", probe], check=True, env=env, capture_output=True,
                                             text=True).stdout.split()
        out[label] = {"median_ms": round(1000 * statistics.median(times[label]), 1),
                      "min_ms": round(1000 * min(times[label]), 1),
                      "cpu_median_ms": round(1000 * statistics.median(cpu[label]), 1),
                      "cpu_min_ms": round(1000 * min(cpu[label]), 1), "modules": int(modules),
                      "boot_loaded": boot == "True", "hook_loaded": hook == "True"}
    return out


def lm_eval_loads_plugin(python: Path) -> dict:
    """What `import lm_eval.api.registry` brings in: the hook, and our models by name."""
    probe = ("import sys, lm_eval.api.registry as r; from lm_eval.api.registry import get_model; "
             "print('lm_eval_audio._hook' in sys.modules, 'qwen2audio' in r.model_registry, "
             "get_model('hf').__name__)")
    out = subprocess.run([str(python), "-c", probe], env={**os.environ, **OFFLINE}, capture_output=True, text=True)
    return {"stdout": out.stdout.strip(), "stderr_tail": out.stderr.strip()[-500:]}


def run_suite(python: Path, sdist_dir: Path, junit: Path, extra: list[str]) -> dict[str, str]:
    """lm-eval's suite in `sdist_dir`: {test id: passed|failed|error|skipped}."""
    cmd = [str(python), "-P", "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider", "--continue-on-collection-errors",
           f"--junitxml={junit}", *extra]
    subprocess.run(cmd, cwd=sdist_dir, env={**os.environ, **OFFLINE}, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    outcomes = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        outcomes[name] = ("failed" if "failure" in kinds else "error" if "error" in kinds
                          else "skipped" if "skipped" in kinds else "passed")
    return outcomes


def counts(outcomes: dict[str, str]) -> dict[str, int]:
    """How many tests had each outcome."""
    out: dict[str, int] = {}
    for v in outcomes.values():
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


def main(argv: list[str] | None = None) -> int:
    """Build both environments, compare, print a JSON summary; exit 1 when lm-eval's suite differs."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sdist", type=Path, required=True, help="lm_eval-0.4.13.tar.gz (pip download --no-binary)")
    ap.add_argument("--work", type=Path, default=None, help="folder for the environments (default: a temp folder)")
    ap.add_argument("--plugin", type=Path, default=REPO,
                    help="checkout of lm-eval-audio to install in `with` (default: this one; a copy keeps "
                         "edits made during a long run out of it)")
    ap.add_argument("--before", type=Path, default=None,
                    help="another checkout (e.g. `git worktree add /tmp/before <commit>`) whose start-up is "
                         "measured beside the two, in a third venv")
    ap.add_argument("--startup-runs", type=int, default=30)
    ap.add_argument("--startup-only", action="store_true", help="skip lm-eval's test suite")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --), e.g. -k registry")
    args = ap.parse_args(argv)

    work = args.work or Path(tempfile.mkdtemp(prefix="lm_eval_with_plugin_"))
    work.mkdir(parents=True, exist_ok=True)
    with tarfile.open(args.sdist) as tar:
        tar.extractall(work, filter="data")
    sdist_dir = next(p for p in work.iterdir() if p.is_dir() and p.name.startswith("lm_eval-"))

    summary: dict = {"sdist": args.sdist.name, "python": sys.version.split()[0], "plugin": str(args.plugin)}
    pythons = {label: make_env(work / f"env_{label}", args.plugin.resolve() if label == "with" else None)
               for label in ("without", "with")}
    timed = dict(pythons)
    if args.before is not None:
        timed["before"] = make_env(work / "env_before", args.before.resolve())
    for label, start in startup(timed, args.startup_runs).items():
        summary[label] = {"startup": start, "lm_eval": lm_eval_loads_plugin(timed[label])}
    outcomes = {}
    if not args.startup_only:
        for label, python in pythons.items():
            outcomes[label] = run_suite(python, sdist_dir, work / f"junit_{label}.xml", args.pytest_args)
            summary[label]["suite"] = counts(outcomes[label])
    if outcomes:
        names = sorted(set(outcomes["without"]) | set(outcomes["with"]))
        summary["differ"] = {n: [outcomes["without"].get(n, "absent"), outcomes["with"].get(n, "absent")]
                             for n in names if outcomes["without"].get(n) != outcomes["with"].get(n)}
    print(json.dumps(summary, indent=2))
    return 1 if summary.get("differ") else 0


if __name__ == "__main__":
    sys.exit(main())
