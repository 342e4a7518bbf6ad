"""MMLU for the spoken task and its text twin: loading, the seed's subset, and the prompt texts.

Where the questions come from is one setting, `mmlu_path`:
- given to lm-eval as `--metadata '{"mmlu_path": "..."}'` (lm-eval passes metadata to our
  dataset loader, and records it in the results), or to `lm-eval-audio synth --mmlu-path`;
- defaulting to the environment variable `LM_EVAL_AUDIO_MMLU_PATH`, then to `cais/mmlu`.
A value naming an existing folder is read as the original MMLU CSV layout
(`<dir>/test/<subject>_test.csv`, `<dir>/dev/<subject>_dev.csv`: no header; question, A, B, C,
D, answer letter); anything else is a dataset id on the Hugging Face hub.

Every document has the `cais/mmlu` columns (question, subject, choices, answer as 0-3) plus
`mmlu_id` ("<subject>/<row in the subject's split>"), the item's identity across tasks.
The spoken clip and the text prompt of a document are built here and only here, from the same
question block, so the two tasks differ in modality and nothing else.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

ENV_MMLU_PATH = "LM_EVAL_AUDIO_MMLU_PATH"
HUB_ID = "cais/mmlu"
LETTERS = ("A", "B", "C", "D")
SPLITS = ("test", "dev")

# The full-MMLU generation tasks (spoken_mmlu_gen, mmlu_twin_gen) put this instruction before
# the question, spoken inside the clip or written. The seed study's own strings are in seed_mmlu.py.
INSTRUCTION = (
    "Answer the following multiple choice question. "
    "Reply with the letter of the correct answer: A, B, C or D."
)


class MMLUDataError(ValueError):
    """Malformed or missing MMLU data; the message names the file/row or setting concerned."""


def resolve_source(mmlu_path: str | os.PathLike | None = None) -> str:
    """The effective `mmlu_path` setting: argument, else environment, else `cais/mmlu`."""
    value = mmlu_path or os.environ.get(ENV_MMLU_PATH) or HUB_ID
    return str(value)


def _is_local(source: str) -> bool:
    p = Path(source).expanduser()
    if p.is_dir():
        return True
    # A hub id is "owner/name"; anything that reads as a filesystem path must exist.
    if p.exists() or source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise MMLUDataError(f"mmlu_path {source!r} is not a folder in the MMLU CSV layout (test/, dev/)")
    return False


def _read_csv(path: Path, subject: str) -> list[dict]:
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for i, rec in enumerate(csv.reader(f)):
            if len(rec) != 6:
                raise MMLUDataError(f"{path}, row {i + 1}: expected 6 columns (question, A-D, answer), got {len(rec)}")
            letter = rec[5].strip().upper()
            if letter not in LETTERS:
                raise MMLUDataError(f"{path}, row {i + 1}: answer must be one of A-D, got {rec[5]!r}")
            rows.append({
                "question": rec[0],
                "subject": subject,
                "choices": rec[1:5],
                "answer": LETTERS.index(letter),
                "mmlu_id": f"{subject}/{i}",
            })
    return rows


def local_subjects(folder: Path, split: str = "test") -> list[str]:
    """The subjects present in a CSV folder, sorted (the order of the hub's `all` config)."""
    suffix = f"_{split}.csv"
    return sorted(p.name[: -len(suffix)] for p in (folder / split).glob("*" + suffix))


def _load_local(folder: Path, subject: str):
    import datasets

    out = {}
    for split in SPLITS:
        subjects = local_subjects(folder, split) if subject == "all" else [subject]
        if not subjects:
            raise MMLUDataError(f"no {split} CSV files under {folder / split}")
        rows: list[dict] = []
        for s in subjects:
            path = folder / split / f"{s}_{split}.csv"
            if not path.is_file():
                raise MMLUDataError(f"MMLU subject {s!r}: {path} not found (mmlu_path={folder})")
            rows.extend(_read_csv(path, s))
        out[split] = datasets.Dataset.from_list(rows)
    return datasets.DatasetDict(out)


def _add_ids(ds):
    counters: dict[str, int] = {}

    def ident(example):
        n = counters.get(example["subject"], 0)
        counters[example["subject"]] = n + 1
        return {"mmlu_id": f"{example['subject']}/{n}"}

    return ds.map(ident, desc="MMLU ids")


def _load_hub(repo: str, subject: str):
    import datasets

    loaded = datasets.load_dataset(repo, subject)
    out = {}
    for split in SPLITS:
        if split not in loaded:
            raise MMLUDataError(f"{repo} ({subject}) has no {split!r} split")
        ds = loaded[split]
        if "subject" not in ds.column_names or not all(ds["subject"]):
            ds = ds.remove_columns([c for c in ["subject"] if c in ds.column_names])
            ds = ds.add_column("subject", [subject] * len(ds))
        out[split] = _add_ids(ds)
    return datasets.DatasetDict(out)


def load_mmlu(subject: str = "all", mmlu_path: str | os.PathLike | None = None):
    """MMLU test and dev splits of one subject (or `all`) as a `datasets.DatasetDict`."""
    source = resolve_source(mmlu_path)
    if _is_local(source):
        return _load_local(Path(source).expanduser(), subject)
    return _load_hub(source, subject)


def question_block(doc: dict) -> str:
    """Question and lettered alternatives: what both the speech and the text present."""
    lines = [doc["question"].strip()]
    lines += [f"{letter}. {str(choice).strip()}" for letter, choice in zip(LETTERS, doc["choices"])]
    return "\n".join(lines)


def speech_text(doc: dict, *, instruction: bool = False) -> str:
    """The text a clip speaks: [instruction +] question and alternatives."""
    block = question_block(doc)
    return f"{INSTRUCTION}\n\n{block}" if instruction else block


def text_prompt(doc: dict, *, instruction: bool = False) -> str:
    """The text twin's prompt: exactly what the clip says, then `Answer:`."""
    return speech_text(doc, instruction=instruction) + "\nAnswer:"


def spoken_clip_of(doc: dict, text: str, *, synth_task: str | None = None, stems: tuple[str, ...] = ()) -> dict:
    """An `audio_ref` to the cached clip speaking `text` for this document (synthesised when
    missing); `synth_task` is the task named in the "run this command" error of a missing clip.
    From a folder of pre-made clips (the clips backend) the clip is the file named by one of
    `stems`, else by the item id (`nutrition/49` -> `nutrition_49.<ext>`)."""
    from lm_eval_audio.audio import audio_ref
    from lm_eval_audio.tts import get_synthesizer
    from lm_eval_audio.tts.clips import item_stem

    name = f"MMLU item {doc.get('mmlu_id', doc['question'][:40])}"
    hint = f"lm-eval-audio synth --task {synth_task}" if synth_task else None
    stems = tuple(stems) + ((item_stem(doc["mmlu_id"]),) if doc.get("mmlu_id") else ())
    path = get_synthesizer().clip(text, name=name, hint=hint, stems=stems)
    return audio_ref(path)


def spoken_clip(doc: dict, *, instruction: bool = False, synth_task: str | None = None) -> dict:
    """The clip of the full-MMLU spoken tasks: [instruction +] question and alternatives."""
    return spoken_clip_of(doc, speech_text(doc, instruction=instruction), synth_task=synth_task)


def load_for_task(subject: str = "all", mmlu_path: str | None = None, spoken: bool = False, **run_metadata):
    """The dataset of one spoken-MMLU / text-twin task (lm-eval's `custom_dataset` hook).

    lm-eval calls it with the YAML's `dataset_kwargs` plus the run's metadata (data locations,
    the `tts_*` speech settings, model arguments). Documents hold the item only: run settings
    stay out of them, so the same item is the same document in every run. What made the data
    (source; for spoken tasks the TTS settings, which this call makes the run's) is recorded
    for the results file (`data._common.record_protocol`).
    """
    from lm_eval_audio.data._common import record_protocol

    data = load_mmlu(subject, mmlu_path)
    return record_protocol(data, **task_protocol(resolve_source(mmlu_path), spoken, run_metadata))


def task_protocol(source: str, spoken: bool, run_metadata: dict) -> dict:
    """The facts an MMLU task records: its source and, when spoken, the run's TTS settings."""
    facts: dict = {"source": source}
    if spoken:
        from lm_eval_audio.tts import configure_run

        facts["tts"] = configure_run(run_metadata).describe()
    return facts
