"""`lm-eval-audio reproduce --preset seed --output DIR`: the seed study's experiments, then the report.

The seed study, inside the harness:
1. MMLU-500 as text on the backbone LLM (`hf`, Qwen-7B-Chat) and on Qwen2-Audio-Instruct in
   text-only mode (loglikelihood and generation + extraction twins);
2. spoken MMLU-500 on Qwen2-Audio-Instruct, audio only (generation + extraction, and loglikelihood);
3. LibriSpeech dev-clean-200 on Whisper and on Qwen2-Audio;
4. timbre range on Qwen2-Audio before and after a LoRA adapter (given, or trained here with the
   `finetune` module).
Every model, the adapter and the data locations can be overridden, so the same command runs
offline on tiny checkpoints. Each experiment writes a normal lm-eval output folder (results JSON
and per-sample JSONL) under DIR/runs/<experiment>; an experiment whose folder already holds
results is not run again (pass --rerun), so an interrupted study resumes. The report goes to
DIR/report.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

PRESETS = ("seed",)


@dataclass(frozen=True)
class Experiment:
    """One lm-eval run: a model configuration on a list of tasks."""

    name: str
    model: str
    model_args: dict[str, Any]
    tasks: tuple[str, ...]
    apply_chat_template: bool = False
    description: str = ""

    @property
    def model_args_string(self) -> str:
        """model_args as lm-eval's `k=v,...` string (its CLI's form)."""
        return ",".join(f"{k}={v}" for k, v in self.model_args.items() if v is not None)


@dataclass
class SeedConfig:
    """The seed study's models, tasks and data; every field is a command-line option."""

    backbone: str = "Qwen/Qwen-7B-Chat"
    backbone_model: str = "hf"
    audio_llm: str = "Qwen/Qwen2-Audio-7B-Instruct"
    whisper: str = "openai/whisper-large-v3"
    whisper_backend: str = "transformers"
    adapter: str | None = None  # existing LoRA adapter; None: train one on the timbre task
    adapter_steps: int = 200
    mmlu_text_tasks: tuple[str, ...] = ("mmlu_twin_500", "mmlu_twin_500_gen")
    mmlu_spoken_tasks: tuple[str, ...] = ("spoken_mmlu_500", "spoken_mmlu_500_gen")
    asr_whisper_task: str = "librispeech_dev_clean_200"
    asr_audio_llm_task: str = "librispeech_dev_clean_200_chat"
    timbre_task: str = "timbre_range"
    chat_template: bool = True
    dtype: str | None = None
    device: str | None = None
    batch_size: int | str = 1
    limit: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # data locations for the task loaders
    skip: tuple[str, ...] = ()
    trust_remote_code: bool = False  # let transformers run the backbone checkpoint's own code

    def experiments(self, adapter_dir: str | None) -> list[Experiment]:
        """The study's runs, in order; `adapter_dir` is the adapter of the 'after' timbre run."""
        common = {"dtype": self.dtype}
        exps = [
            Experiment("mmlu_text_backbone", self.backbone_model,
                       {"pretrained": self.backbone, **common, "trust_remote_code": self.trust_remote_code or None},
                       self.mmlu_text_tasks, self.chat_template, "MMLU-500 as text on the backbone LLM"),
            Experiment("mmlu_text_audio_llm", "qwen2audio", {"pretrained": self.audio_llm, **common, "mode": "text"},
                       self.mmlu_text_tasks, self.chat_template, "MMLU-500 as text on the audio LLM, text only"),
            Experiment("mmlu_spoken_audio_llm", "qwen2audio", {"pretrained": self.audio_llm, **common, "mode": "audio"},
                       self.mmlu_spoken_tasks, self.chat_template, "spoken MMLU-500 on the audio LLM, audio only"),
            Experiment("asr_whisper", "whisper", {"pretrained": self.whisper, "backend": self.whisper_backend},
                       (self.asr_whisper_task,), False, "LibriSpeech dev-clean-200 on Whisper"),
            Experiment("asr_audio_llm", "qwen2audio", {"pretrained": self.audio_llm, **common},
                       (self.asr_audio_llm_task,), self.chat_template, "LibriSpeech dev-clean-200 on the audio LLM"),
            Experiment("timbre_base", "qwen2audio", {"pretrained": self.audio_llm, **common},
                       (self.timbre_task,), False, "timbre range before the adapter"),
            Experiment("timbre_adapter", "qwen2audio", {"pretrained": self.audio_llm, **common, "peft": adapter_dir},
                       (self.timbre_task,), False, "timbre range after the adapter"),
        ]
        unknown = set(self.skip) - {e.name for e in exps}
        if unknown:
            raise ValueError(f"--skip: unknown experiment(s) {sorted(unknown)}; "
                             f"choose from {[e.name for e in exps]}")
        return [e for e in exps if e.name not in self.skip]


def train_adapter(cfg: SeedConfig, out: Path) -> Path:
    """Train a LoRA adapter on the timbre task's train split with the `finetune` module."""
    from finetune.config import load_config
    from finetune.train import train

    overrides = {"model.pretrained": cfg.audio_llm, "data.task": cfg.timbre_task, "data.split": "train",
                 "training.output_dir": str(out), "training.max_steps": cfg.adapter_steps,
                 "evaluation.enabled": False}
    if cfg.dtype:
        overrides["model.dtype"] = cfg.dtype
    result = train(load_config(None, overrides))
    if not (Path(result.output_dir) / "adapter_config.json").is_file():
        raise RuntimeError(f"finetune finished but wrote no adapter_config.json in {result.output_dir}")
    return Path(result.output_dir)


def _task_manager(tasks: list[str], metadata: dict[str, Any]):
    """A TaskManager over our task folder only, unless a task is lm-eval's own: indexing all of
    lm-eval's ~15k task files costs about a minute. `metadata` reaches the task loaders (data
    locations), as lm-eval's CLI passes model_args and --metadata."""
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_defaults=False, metadata=metadata)
    missing = [t for t in tasks if t not in tm.all_tasks]
    if missing:
        logger.info("tasks %s are not ours; indexing lm-eval's own tasks too", missing)
        tm = TaskManager(metadata=metadata)
        still = [t for t in tasks if t not in tm.all_tasks]
        if still:
            raise ValueError(f"unknown task(s): {still}")
    return tm


def run_experiment(exp: Experiment, out: Path, cfg: SeedConfig) -> Path:
    """Run one experiment through lm-eval and save it as `lm_eval --output_path out --log_samples` does."""
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker

    metadata = {k: v for k, v in exp.model_args.items() if v is not None} | dict(cfg.metadata)
    task_manager = _task_manager(list(exp.tasks), metadata)
    tracker = EvaluationTracker(output_path=str(out))
    results = simple_evaluate(
        model=exp.model, model_args=exp.model_args_string, tasks=list(exp.tasks), device=cfg.device,
        batch_size=cfg.batch_size, limit=cfg.limit, log_samples=True, evaluation_tracker=tracker,
        apply_chat_template=exp.apply_chat_template, task_manager=task_manager,
        metadata=dict(cfg.metadata) or None,
    )
    if results is None:
        raise RuntimeError(f"experiment {exp.name}: lm-eval returned no results")
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    for task_name in results["configs"]:
        tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
    return out


def reproduce(cfg: SeedConfig, output: str | Path, rerun: bool = False, report: bool = True) -> Path:
    """Run the study's experiments into `output`/runs and write the report to `output`/report."""
    from tqdm import tqdm

    out = Path(output)
    runs = out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    adapter = cfg.adapter
    if adapter is None and "timbre_adapter" not in cfg.skip:
        adapter_dir = out / "adapter"
        if (adapter_dir / "adapter_config.json").is_file() and not rerun:
            logger.info("using the adapter trained earlier in %s", adapter_dir)
        else:
            logger.info("training a LoRA adapter on %s (%d steps)", cfg.timbre_task, cfg.adapter_steps)
            train_adapter(cfg, adapter_dir)
        adapter = str(adapter_dir)
    experiments = cfg.experiments(adapter)
    for exp in tqdm(experiments, desc="seed study", unit="experiment"):
        folder = runs / exp.name
        if not rerun and any(folder.rglob("results_*.json")):
            logger.info("%s: results already in %s; skipping (--rerun to run again)", exp.name, folder)
            continue
        logger.info("%s: %s (%s %s on %s)", exp.name, exp.description, exp.model, exp.model_args_string,
                    ",".join(exp.tasks))
        run_experiment(exp, folder, cfg)
    if not report:
        return runs
    from lm_eval_audio.report import build_report, write_report

    outputs = write_report(build_report([runs]), out / "report")
    return outputs.html


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the `reproduce` subcommand."""
    d = SeedConfig()
    parser.add_argument("--preset", choices=PRESETS, default="seed", help="which study (only the seed study so far)")
    parser.add_argument("-o", "--output", required=True, help="folder for the runs, the adapter and the report")
    parser.add_argument("--backbone", default=d.backbone, help=f"text backbone LLM (default {d.backbone})")
    parser.add_argument("--backbone-model", default=d.backbone_model, help="lm-eval model type of the backbone")
    parser.add_argument("--audio-llm", default=d.audio_llm, help=f"Qwen2-Audio checkpoint (default {d.audio_llm})")
    parser.add_argument("--whisper", default=d.whisper, help=f"Whisper checkpoint or CTranslate2 folder (default {d.whisper})")
    parser.add_argument("--whisper-backend", default=d.whisper_backend, choices=("transformers", "ctranslate2"))
    parser.add_argument("--adapter", default=None, help="existing LoRA adapter for the timbre 'after' run "
                        "(default: train one with the finetune module)")
    parser.add_argument("--adapter-steps", type=int, default=d.adapter_steps, help="training steps when training the adapter")
    parser.add_argument("--timbre-task", default=d.timbre_task, help="timbre_range, or timbre_range_synth offline")
    parser.add_argument("--asr-whisper-task", default=d.asr_whisper_task)
    parser.add_argument("--asr-audio-llm-task", default=d.asr_audio_llm_task)
    parser.add_argument("--mmlu-text-tasks", default=",".join(d.mmlu_text_tasks))
    parser.add_argument("--mmlu-spoken-tasks", default=",".join(d.mmlu_spoken_tasks))
    parser.add_argument("--no-chat-template", action="store_true", help="do not apply chat templates")
    parser.add_argument("--dtype", default=None, help="dtype of the LLMs (e.g. bfloat16, float32)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--batch-size", default=1)
    parser.add_argument("--limit", type=int, default=None, help="first N documents of every task (quick runs)")
    parser.add_argument("--mmlu-path", default=None, help="local MMLU CSV folder (else the hub)")
    parser.add_argument("--librispeech-dir", default=None, help="local LibriSpeech folder (else the hub)")
    parser.add_argument("--timbre-range-dir", default=None, help="local timbre_range folder (else the hub)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="let transformers run Python code shipped with the backbone checkpoint (Qwen/Qwen-7B-Chat "
                             "needs it); off by default: only for checkpoints you trust")
    parser.add_argument("--skip", default="", help="comma-separated experiments to leave out")
    parser.add_argument("--rerun", action="store_true", help="run experiments that already have results")
    parser.add_argument("--no-report", action="store_true", help="run the experiments only")


def config_from_args(args: argparse.Namespace) -> SeedConfig:
    """The SeedConfig the command line asks for."""
    def tasks(s: str) -> tuple[str, ...]:
        return tuple(t.strip() for t in s.split(",") if t.strip())

    metadata = {k: v for k, v in (("mmlu_path", args.mmlu_path), ("librispeech_dir", args.librispeech_dir),
                                  ("timbre_range_dir", args.timbre_range_dir)) if v}
    for key, value in metadata.items():
        if not Path(value).expanduser().is_dir():
            raise SystemExit(f"--{key.replace('_', '-')}: folder not found: {value}")
    return SeedConfig(
        backbone=args.backbone, backbone_model=args.backbone_model, audio_llm=args.audio_llm,
        whisper=args.whisper, whisper_backend=args.whisper_backend, adapter=args.adapter,
        adapter_steps=args.adapter_steps, mmlu_text_tasks=tasks(args.mmlu_text_tasks),
        mmlu_spoken_tasks=tasks(args.mmlu_spoken_tasks), asr_whisper_task=args.asr_whisper_task,
        asr_audio_llm_task=args.asr_audio_llm_task, timbre_task=args.timbre_task,
        chat_template=not args.no_chat_template, dtype=args.dtype, device=args.device,
        batch_size=args.batch_size, limit=args.limit, metadata=metadata, skip=tasks(args.skip),
        trust_remote_code=args.trust_remote_code,
    )


def run(args: argparse.Namespace) -> int:
    """Run the study; prints the report's HTML path (or the runs folder with --no-report)."""
    cfg = config_from_args(args)
    print(reproduce(cfg, args.output, rerun=args.rerun, report=not args.no_report))
    return 0
