"""Which twins `lm-eval-audio speak` writes, and what each twin's YAML says.

Names resolve through lm-eval's own task index (`TaskManager.task_index`): a task, a group (its
twin is a group of the members' twins, with the original group's settings) or a tag (each tagged
task). A twin's YAML `include`s the original's YAML file, so data, splits, prompts, filters,
metrics and generation settings are the original's, unchanged; it adds only its name, tags
(the original's, prefixed), `doc_to_audio` and metadata: the original's, plus `text_twin` (the
report pairs the two by it) and `spoken_twin` (what is spoken; `speech.TwinSpec`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lm_eval_audio.twin.speech import METADATA_KEY, SPEAK, TwinSpec

DEFAULT_PREFIX = "spoken_"
AUDIO_FUNCTION = "lm_eval_audio.twin.speech.doc_to_audio"

# What the default (`prompt`) speaks, per output type: said in each twin's YAML.
SPOKEN_PART = {
    "multiple_choice": "the context (the prompt doc_to_text renders); the answer choices stay text, since "
                       "they are what is scored",
    "loglikelihood": "the context (the prompt doc_to_text renders); the continuation stays text, since it "
                     "is what is scored",
    "generate_until": "the whole prompt (what doc_to_text renders); the model answers in text",
}


class SpeakError(ValueError):
    """A task that cannot have a spoken twin, or a name that does not resolve; says which and why."""


class UnknownName(SpeakError):
    """A name the task index does not hold (the caller may retry with lm-eval's built-in tasks)."""


@dataclass(frozen=True)
class TwinFile:
    """One YAML file to write: the twin of `original` (a task or a group)."""

    name: str
    original: str
    kind: str  # "task" | "group"
    text: str


def _as_list(value: Any) -> list[str]:
    if not value:
        return []
    return [value] if isinstance(value, str) else list(value)


class _Planner:
    def __init__(self, index: dict, *, speak: str, question_field: str | None, prefix: str, output: Path):
        if speak not in SPEAK:
            raise SpeakError(f"--speak must be one of {SPEAK}, got {speak!r}")
        self.index, self.speak, self.prefix, self.output = index, speak, prefix, output.resolve()
        self.question_field = question_field if speak == "question" else None
        self.files: dict[str, TwinFile] = {}

    def twin(self, name: str) -> str:
        return self.prefix + name

    def entry(self, name: str, where: str):
        entry = self.index.get(name)
        if entry is None:
            raise UnknownName(f"{where}: no task, group or tag named {name!r} (speak resolves names as lm_eval "
                              "does: its built-in tasks and --include_path)")
        return entry

    def visit(self, name: str, where: str = "speak") -> str:
        """Plan the twin of a task, group or tag; returns the twin's name."""
        from lm_eval.tasks._index import Kind

        entry = self.entry(name, where)
        twin = self.twin(name)
        if twin in self.files:
            return twin
        self._check_free(twin)
        if entry.kind == Kind.TAG:
            for task in sorted(entry.tags):
                self.visit(task, f"tag {name}")
            return twin
        if entry.kind == Kind.PY_TASK:
            raise SpeakError(f"{name} is a Python task class ({entry.yaml_path}): its prompts are code, not a "
                             "configuration speak can reuse")
        if entry.yaml_path is None:
            raise SpeakError(f"{name} has no YAML file of its own to include")
        if entry.kind == Kind.GROUP:
            self.files[twin] = self._group(name, entry)
        else:
            self.files[twin] = self._task(name, entry)
        return twin

    def _check_free(self, twin: str) -> None:
        # A twin must not shadow a task of the same name that is not a twin written here before.
        from lm_eval.tasks._index import Kind

        other = self.index.get(twin)
        if other is None:
            return
        # A tag is ours when every task it holds is (the twins of an earlier run into this folder).
        members = [self.index.get(t) for t in sorted(other.tags)] if other.kind == Kind.TAG else [other]
        paths = [m.yaml_path if m is not None else None for m in members]
        if paths and all(p is not None and Path(p).resolve().parent == self.output for p in paths):
            return
        where = other.yaml_path or f"a tag of {', '.join(sorted(other.tags))}"
        raise SpeakError(f"{twin} already names a task, group or tag ({where}); its twin would shadow it. "
                         f"Choose another prefix (--prefix), e.g. --prefix {self.prefix}lm_")

    def _metadata(self, name: str, metadata: Any) -> dict:
        # lm-eval keeps a non-dict metadata under "_metadata" (tasks/_factory.py): so do we.
        meta = dict(metadata) if isinstance(metadata, dict) else ({} if metadata is None else {"_metadata": metadata})
        spec = TwinSpec(task=name, speak=self.speak, question_field=self.question_field)
        meta.update(text_twin=name, **{METADATA_KEY: spec.as_dict()})
        return meta

    def _task(self, name: str, entry) -> TwinFile:
        cfg = entry.cfg or {}
        if cfg.get("doc_to_audio"):
            raise SpeakError(f"{name} already has audio (doc_to_audio): it is spoken already")
        output_type = cfg.get("output_type", "generate_until")
        if output_type not in SPOKEN_PART:
            raise SpeakError(f"{name}: output type {output_type} scores the document's own text; there is no "
                             "prompt to speak")
        body = {
            "include": str(Path(entry.yaml_path).resolve()),
            "task": self.twin(name),
            "tag": [self.twin(t) for t in _as_list(cfg.get("tag"))],
            "metadata": self._metadata(name, cfg.get("metadata")),
        }
        return TwinFile(self.twin(name), name, "task", _render(body, self._header(name, output_type, cfg)))

    def _header(self, name: str, output_type: str, cfg: dict) -> list[str]:
        if self.speak == "question":
            spoken = (f"only the document's `{self.question_field}` field; the rest of the prompt (instructions, "
                      "choices) stays text")
        else:
            spoken = SPOKEN_PART[output_type]
        key = (cfg.get("metadata") or {}).get("item_key") if isinstance(cfg.get("metadata"), dict) else None
        identity = f"by their `{key}` field" if key else "by document id (the same documents, in the same order)"
        return [
            f"Spoken twin of `{name}` ({output_type}), written by `lm-eval-audio speak`.",
            "Everything but the keys below is the original's configuration, included unchanged.",
            f"Spoken: {spoken}.",
            "Under the model argument mode=audio the spoken text is removed from the text the model",
            "receives (it hears it instead); mode=auto gives both, mode=text the text only.",
            "Few-shot examples stay text: only the scored document is spoken (audio few-shot is refused).",
            f"Items pair with `{name}` {identity}.",
            "Clips: the run's TTS settings (LM_EVAL_AUDIO_TTS_*, --metadata tts_*), cached; made ahead of",
            f"a run by `lm-eval-audio synth --task {self.twin(name)} --include-path <this folder>`.",
        ]

    def _group(self, name: str, entry) -> TwinFile:
        from lm_eval.tasks._yaml_loader import load_yaml

        cfg = load_yaml(entry.yaml_path, resolve_func=True)
        members = cfg.get("task")
        if not isinstance(members, list):
            raise SpeakError(f"group {name} ({entry.yaml_path}) has no task list")
        where = f"group {name}"
        mapped: list = []
        for item in members:
            if isinstance(item, str):
                mapped.append(self.visit(item, where))
                continue
            if not isinstance(item, dict) or not ({"task", "group"} & set(item)):
                raise SpeakError(f"{where}: member {item!r} is neither a name nor a task or group entry")
            key = "group" if "group" in item else "task"
            if item[key] not in self.index:
                raise SpeakError(f"{where} defines {item[key]!r} inline; speak twins tasks and groups that "
                                 "have their own YAML")
            overrides = {k: v for k, v in item.items() if k != key}
            functions = sorted(k for k, v in overrides.items() if callable(v))
            if functions:
                raise SpeakError(f"{where} overrides {', '.join(functions)} of {item[key]} with a function; "
                                 "speak copies plain settings only")
            if "metadata" in overrides:  # an override replaces the member's metadata whole: keep the twin's
                overrides["metadata"] = self._metadata(item[key], overrides["metadata"])
            mapped.append({key: self.visit(item[key], where), **overrides})
        body = {
            "include": str(Path(entry.yaml_path).resolve()),
            "group": self.twin(name),
            "task": mapped,
            "tag": [self.twin(t) for t in _as_list(cfg.get("tag"))],
        }
        header = [f"Spoken twin of the group `{name}`, written by `lm-eval-audio speak`: the original's",
                  "settings (included unchanged) over the twins of its members."]
        return TwinFile(self.twin(name), name, "group", _render(body, header))


def _render(body: dict, header: list[str]) -> str:
    text = "".join(f"# {line}\n" for line in header)
    text += yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=100)
    if "group" not in body:
        text += f"doc_to_audio: !function {AUDIO_FUNCTION}\n"
    return text


def plan_twins(names: list[str], index: dict, *, output: Path, speak: str = "prompt",
               question_field: str | None = "question", prefix: str = DEFAULT_PREFIX) -> list[TwinFile]:
    """The twin files for `names` (tasks, groups or tags of lm-eval's `index`), members first.

    Raises UnknownName for a name the index lacks and SpeakError for a task that cannot be
    spoken (a Python task class, a task with audio already, loglikelihood_rolling, a group
    member defined inline), naming it and why.
    """
    planner = _Planner(index, speak=speak, question_field=question_field, prefix=prefix, output=output)
    for name in names:
        planner.visit(name)
    return list(planner.files.values())

