"""`lm-eval-audio synth`: synthesise (or check) every clip a spoken task needs, ahead of a run.

It loads the task through lm-eval's own TaskManager and asks each document for its audio, so
exactly the clips the evaluation will request end up in the cache. Reruns make nothing;
an interrupted run resumes where it stopped (finished clips are in the cache).
"""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)


def add_tts_arguments(parser: argparse.ArgumentParser) -> None:
    """The speech settings (shared by `synth` and `speak`)."""
    parser.add_argument("--backend", choices=["espeak", "openai", "clips"], default=None,
                        help="speech engine, or clips: pre-made files in --clips-dir (checked, not made) "
                             "(default: $LM_EVAL_AUDIO_TTS_BACKEND, else espeak)")
    parser.add_argument("--clips-dir", default=None,
                        help="clips backend: folder of question_{i}.<ext> or <item id>.<ext> files")
    parser.add_argument("--audio-format", choices=["flac", "mp3"], default=None,
                        help="openai backend: the format requested (default flac; the seed got mp3)")
    parser.add_argument("--voice", default=None, help="espeak voice (en-us) or OpenAI voice (alloy)")
    parser.add_argument("--model", default=None, help="OpenAI speech model (default gpt-4o-mini-tts)")
    parser.add_argument("--instructions", default=None, help="OpenAI voice instructions (default: the seed's)")
    parser.add_argument("--rate", type=int, default=None, help="espeak words per minute (default 175)")
    parser.add_argument("--cache-dir", default=None, help="clip cache (default $LM_EVAL_AUDIO_TTS_CACHE or ~/.cache/lm_eval_audio/tts)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N documents of each task")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the `synth` subcommand."""
    parser.add_argument("--task", required=True, action="append",
                        help="lm-eval task or group with doc_to_audio (e.g. spoken_mmlu_seed); repeatable")
    add_tts_arguments(parser)
    parser.add_argument("--mmlu-path", default=None,
                        help="MMLU source: a folder in the original CSV layout or a hub id (default cais/mmlu)")
    parser.add_argument("--include-path", default=None,
                        help="extra task folder; lm-eval's built-in tasks are not indexed (they have no speech)")
    parser.add_argument("--check", action="store_true", help="synthesise nothing; count the missing clips")


def tts_config(args: argparse.Namespace, *, check: bool = False):
    """The TTSConfig the command-line settings ask for (`check`: synthesise nothing)."""
    from . import TTSConfig

    config = TTSConfig.from_env(backend=args.backend, voice=args.voice, model=args.model,
                                instructions=args.instructions, rate=args.rate, cache_dir=args.cache_dir,
                                clips_dir=args.clips_dir, audio_format=args.audio_format)
    return config.with_(synthesize=not check)


def synthesise(tasks: list, config, *, limit: int | None = None) -> int:
    """Ask every document of `tasks` for its audio, so each clip the evaluation will request is
    in the cache (`config.synthesize` False: only count the missing ones). Returns 1 when any
    clip is missing or failed, else 0; the counts are logged."""
    from tqdm import tqdm

    from . import ClipMissingError, Synthesizer, use_synthesizer

    synth = Synthesizer(config)
    failures: list[str] = []
    missing = 0
    logger.info("synthesising with %s (voice %s) into %s", config.backend, config.voice, config.cache_dir)
    with use_synthesizer(synth):
        for task in tasks:
            name = task.config.task
            if not task.config.doc_to_audio:
                raise SystemExit(f"task {name} has no doc_to_audio: nothing to synthesise")
            docs = list(task.eval_docs)
            if limit is not None:
                docs = docs[:limit]
            for doc_id, doc in enumerate(tqdm(docs, desc=f"speech of {name}", unit="doc")):
                try:
                    task.doc_to_audio(doc)
                except ClipMissingError as e:
                    missing += 1
                    if config.backend == "clips":  # nothing can make it: name the item and the file
                        failures.append(f"{name} doc {doc_id}: {e}")
                except Exception as e:  # one bad item must not stop the other clips; all are listed below
                    failures.append(f"{name} doc {doc_id}: {e}")
    s = synth.stats
    if not config.synthesize:
        logger.info("check: %d clips present, %d missing", s.reused, missing)
        return 1 if missing else 0
    logger.info("synth done: made %d, reused %d, failed %d", s.made, s.reused, len(failures))
    for line in failures[:20]:
        logger.error(line)
    if len(failures) > 20:
        logger.error("... and %d more failures", len(failures) - 20)
    return 1 if failures else 0


def run(args: argparse.Namespace) -> int:
    """Synthesise the clips of the requested tasks; returns 1 when any clip failed."""
    from lm_eval.tasks import TaskManager

    config = tts_config(args, check=args.check)
    metadata = {"mmlu_path": args.mmlu_path} if args.mmlu_path else {}
    # Indexing lm-eval's thousands of built-in YAMLs costs tens of seconds and none of them is
    # spoken: this package's tasks/ folder, then the user's.
    from lm_eval_audio.files import tasks_dir

    paths = [str(tasks_dir())] + ([args.include_path] if args.include_path else [])
    manager = TaskManager(include_path=paths, include_defaults=False, metadata=metadata)
    tasks = list(manager.load(args.task)["tasks"].values())
    return synthesise(tasks, config, limit=args.limit)
