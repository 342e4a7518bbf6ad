"""The audio of a spoken twin: each document's own text, spoken by the run's TTS backend.

A twin's YAML includes its original task's configuration unchanged and adds
`doc_to_audio: !function lm_eval_audio.twin.speech.doc_to_audio` and a `spoken_twin` entry in
its metadata (the original task, what is spoken). What is spoken is the prompt the original
shows the model, which the task renders from its own `doc_to_text` (a Jinja template, a field
or a function of the original's); lm-eval hands `doc_to_audio` the document only. So the
start-up hook binds this function to its task when the task loads (`for_task`), and the bound
function asks the task for the prompt exactly as lm-eval renders it.

Each clip reference carries the text it speaks (`audio.TRANSCRIPT`): under `mode=audio` the
model layer removes that text, and only that text, from the context the model receives.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lm_eval_audio.audio import TRANSCRIPT, audio_ref

METADATA_KEY = "spoken_twin"
SPEAK = ("prompt", "question")  # what is spoken: the whole prompt, or the document's question field


@dataclass(frozen=True)
class TwinSpec:
    """What a twin's metadata `spoken_twin` says: its original task and what of it is spoken."""

    task: str
    speak: str = "prompt"
    question_field: str | None = None

    def __post_init__(self) -> None:
        if self.speak not in SPEAK:
            raise ValueError(f"spoken twin of {self.task}: speak must be one of {SPEAK}, got {self.speak!r}")
        if self.speak == "question" and not self.question_field:
            raise ValueError(f"spoken twin of {self.task}: speak=question needs a question_field")

    @classmethod
    def from_metadata(cls, metadata: dict | None, where: str) -> TwinSpec:
        """Read a task's `metadata.spoken_twin`; `where` names the task in errors."""
        raw = (metadata or {}).get(METADATA_KEY)
        if not isinstance(raw, dict) or not raw.get("task"):
            raise ValueError(
                f"{where}: its doc_to_audio speaks a twin's text, but its metadata has no {METADATA_KEY} "
                "entry naming the original task (did a group's metadata override replace it?)")
        unknown = sorted(set(raw) - {"task", "speak", "question_field"})
        if unknown:
            raise ValueError(f"{where}: unknown {METADATA_KEY} field(s) {unknown}")
        return cls(task=str(raw["task"]), speak=str(raw.get("speak", "prompt")),
                   question_field=raw.get("question_field"))

    def as_dict(self) -> dict:
        """The metadata entry (no empty fields)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def spoken_text(task, doc: dict, spec: TwinSpec, name: str) -> str:
    """The text a twin speaks for `doc`: the prompt the task renders (`doc_to_text`), or the
    document's question field, which must then stand verbatim in that prompt (so that
    `mode=audio` can remove it). `name` identifies the document in errors."""
    prompt = task.doc_to_text(doc)
    if not isinstance(prompt, str):
        raise ValueError(
            f"{name}: {spec.task}'s doc_to_text gives {type(prompt).__name__} {prompt!r}, not a text: a task "
            "whose contexts are its answer choices (doc_to_text an index) has no one prompt to speak")
    if spec.speak == "prompt":
        text = prompt
    else:
        value = doc.get(spec.question_field) if isinstance(doc, dict) else None
        if not isinstance(value, str) or not value.strip():
            fields = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
            raise ValueError(f"{name}: the twin speaks the document's {spec.question_field!r} field, which holds "
                             f"no text here (document fields: {fields}); name another with --question_field")
        text = value.strip()
        if text not in prompt:
            raise ValueError(
                f"{name}: the {spec.question_field!r} field is not in the prompt as written ({prompt[:80]!r}), "
                "so mode=audio could not remove it from the text; speak the whole prompt (--speak prompt)")
    if not text.strip():
        raise ValueError(f"{name}: the text to speak is empty")
    return text


def _source(config) -> dict:
    # What the twin's data came from, for the results' protocol (the original's own settings).
    kwargs = config.dataset_kwargs or {}
    facts = {"dataset_path": config.dataset_path, "dataset_name": config.dataset_name,
             "data_files": kwargs.get("data_files"),
             "custom_dataset": getattr(config.custom_dataset, "__qualname__", None)}
    return json.loads(json.dumps({k: v for k, v in facts.items() if v}, default=str))


def _document_name(task_name: str, doc: Any, item_key: str | None) -> str:
    if item_key and isinstance(doc, dict) and item_key in doc:
        return f"{task_name} item {item_key}={doc[item_key]}"
    preview = json.dumps(doc, default=str, ensure_ascii=False)
    return f"{task_name} document {preview[:60]}{'...' if len(preview) > 60 else ''}"


def for_task(task) -> tuple[Callable[[dict], list[dict]], dict]:
    """Bind the twin's `doc_to_audio` to its loaded task (called by the start-up hook as the
    task loads its data). Returns the bound function and the facts the results' protocol
    records: the data source, the run's TTS settings and what is spoken."""
    from lm_eval_audio.tts import configure_run, get_synthesizer

    config = task.config
    name = config.task
    spec = TwinSpec.from_metadata(config.metadata, name)
    if config.output_type == "loglikelihood_rolling":
        raise ValueError(f"{name}: a loglikelihood_rolling task scores the document's own text; there is no "
                         "prompt to speak")
    metadata = config.metadata or {}
    synth = configure_run(metadata)  # the run's TTS settings (environment, --metadata tts_*)
    source = metadata.get("config_source")
    hint = f"lm-eval-audio synth --task {name} --include-path {Path(source).parent}" if source else None
    item_key = metadata.get("item_key")

    def doc_to_audio(doc: dict) -> list[dict]:
        where = _document_name(name, doc, item_key)
        text = spoken_text(task, doc, spec, where)
        path = get_synthesizer().clip(text, name=where, hint=hint)
        return [{**audio_ref(path), TRANSCRIPT: text}]

    # Few-shot examples stay text by design: only the scored document is spoken (no refusal here).
    doc_to_audio.text_fewshot = True
    protocol = {"source": _source(config), "tts": synth.describe(), METADATA_KEY: spec.as_dict()}
    return doc_to_audio, protocol


def doc_to_audio(doc: dict) -> list[dict]:
    """What a twin's YAML names as its `doc_to_audio`; replaced per task when the task loads."""
    raise RuntimeError(
        "lm_eval_audio.twin.speech.doc_to_audio was called before its task bound it: the lm-eval-audio "
        "start-up hook binds it when a spoken twin loads. Is lm-eval-audio installed in this environment?")


doc_to_audio.for_task = for_task
