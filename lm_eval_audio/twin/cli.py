"""`lm-eval-audio speak TASK... --output DIR`: write the spoken twin of lm-eval tasks, then
synthesise their clips.

Names resolve as `lm_eval --tasks` resolves them (lm-eval's TaskManager: built-in tasks, this
package's and `--include_path`'s). Then the twins are loaded from DIR through lm-eval like any
task and every document is asked for its audio, so exactly the clips a run will request are in
the cache: a rerun makes none, an interrupted one resumes.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

HELP = "write the spoken twin of any lm-eval task, paired item by item with it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the `speak` subcommand."""
    from lm_eval_audio.tts.cli import add_tts_arguments
    from lm_eval_audio.twin.configs import DEFAULT_PREFIX
    from lm_eval_audio.twin.speech import SPEAK

    parser.add_argument("tasks", nargs="+", metavar="TASK",
                        help="lm-eval task, group or tag (anything `lm_eval ls tasks` lists)")
    parser.add_argument("-o", "--output", required=True, help="folder to write the twins' YAMLs to")
    parser.add_argument("--include_path", "--include-path", dest="include_path", default=None,
                        help="extra task folder, as lm_eval's --include_path")
    parser.add_argument("--speak", choices=SPEAK, default="prompt",
                        help="prompt: the whole prompt (multiple_choice, loglikelihood: the context; the scored "
                             "continuations stay text); question: only the document's question field")
    parser.add_argument("--question_field", "--question-field", dest="question_field", default="question",
                        help="the document field --speak question speaks (default: question)")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="twin name = prefix + original name")
    parser.add_argument("--metadata", default=None,
                        help="JSON handed to the tasks' loaders, as lm_eval's --metadata (e.g. {\"mmlu_path\": DIR})")
    parser.add_argument("--no-synth", action="store_true",
                        help="write the YAMLs only; clips are then made by `synth` or on the first run")
    add_tts_arguments(parser)


def _metadata(raw: str | None) -> dict:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        raise SystemExit(f"--metadata is not JSON: {e}") from e
    if not isinstance(value, dict):
        raise SystemExit(f"--metadata must be a JSON object, got {raw!r}")
    return value


def plan(names: list[str], output: Path, *, include_path: str | None = None, **options) -> list:
    """The twin files for `names`, resolved through this package's tasks and `include_path`
    first, and through lm-eval's built-in tasks too only when a name needs them (indexing those
    costs tens of seconds)."""
    from lm_eval.tasks import TaskManager

    from lm_eval_audio.twin.configs import UnknownName, plan_twins

    from lm_eval_audio.files import tasks_dir

    ours_first = [str(tasks_dir())] + ([include_path] if include_path else [])
    try:
        manager = TaskManager(include_path=ours_first, include_defaults=False)
        return plan_twins(names, manager.task_index, output=output, **options)
    except UnknownName as e:
        logger.info("%s; indexing lm-eval's built-in tasks", e)
    manager = TaskManager(include_path=include_path, include_defaults=True)
    return plan_twins(names, manager.task_index, output=output, **options)


def write(files: list, output: Path) -> list[Path]:
    """Write the twin YAMLs into `output` (atomically: a reader never sees half a file)."""
    from lm_eval_audio.files import atomic_write_bytes

    paths = []
    for f in files:
        path = output / f"{f.name}.yaml"
        atomic_write_bytes(path, f.text.encode("utf-8"))
        paths.append(path)
    return paths


def run(args: argparse.Namespace) -> int:
    """Write the twins; then synthesise their clips (returns 1 when a clip is missing or failed)."""
    from lm_eval.tasks import TaskManager

    from lm_eval_audio.tts.cli import synthesise, tts_config
    from lm_eval_audio.twin.configs import SpeakError

    output = Path(args.output).expanduser()
    metadata = _metadata(args.metadata)
    try:
        files = plan(args.tasks, output, include_path=args.include_path, speak=args.speak,
                     question_field=args.question_field, prefix=args.prefix)
    except SpeakError as e:
        raise SystemExit(f"speak: {e}") from e
    paths = write(files, output)
    for f, path in zip(files, paths):
        logger.info("%s %s -> %s", f.kind, f.original, path)
    twins = [args.prefix + name for name in args.tasks]
    hint = f"lm_eval --include_path {output} --tasks {','.join(twins)}"
    if args.no_synth:
        logger.info("wrote %d twin(s); clips come with `lm-eval-audio synth --include-path %s --task ...` or "
                    "on the first run: %s", len(files), output, hint)
        return 0
    # The twins include their originals by path: the output folder is all the index needs.
    manager = TaskManager(include_path=str(output), include_defaults=False, metadata=metadata)
    tasks = list(manager.load(twins)["tasks"].values())
    code = synthesise(tasks, tts_config(args), limit=args.limit)
    logger.info("run the twins with: %s", hint)
    return code
