"""Training examples: (prompt, answer, clips) triples, from a harness task or a JSONL file.

A task's examples come from the requests lm-eval itself builds for each doc (the task's
`fewshot_context` and `construct_requests`), and the prompt then goes through the same
`build_prompt` the `qwen2audio` model uses, so training sees the exact context and answer
continuation that evaluation scores.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lm_eval_audio.audio import AudioError, as_clip_list, clip_transcript
from lm_eval_audio.arch.prompts import PromptFormat, build_prompt, render_chat

from finetune.config import DataConfig

logger = logging.getLogger(__name__)


@dataclass
class Example:
    """One training example. `prompt` already holds one `<|AUDIO|>` per clip (build_prompt);
    `answer` is the continuation that carries the loss; `append_eos` adds the tokenizer's end
    token to the answer so generation learns to stop."""

    name: str
    prompt: str
    answer: str
    clips: list = field(default_factory=list)
    append_eos: bool = False


def load_examples(data: DataConfig, processor) -> list[Example]:
    """The examples a DataConfig names (task split or JSONL), limited to `data.limit`.

    `processor` is the model's processor: prompts are placed and chat-rendered by it, as the
    hf-audio model layer does at evaluation."""
    if data.task:
        examples = task_examples(data, processor)
    else:
        examples = jsonl_examples(data.jsonl, processor, mode=data.mode, apply_chat_template=data.apply_chat_template)
    if data.limit is not None:
        examples = examples[: data.limit]
    if not examples:
        raise ValueError(f"no training examples in {data.task or data.jsonl}")
    logger.info("%d training examples from %s", len(examples), data.task or data.jsonl)
    return examples


# -- harness task ----------------------------------------------------------------------------


def _chat_renderer(processor):
    # What the hf-audio model's apply_chat_template does (its chat_template_args aside).
    def render(chat_history: list[dict], add_generation_prompt: bool = True) -> str:
        return render_chat(processor, chat_history, add_generation_prompt)

    return render


def get_task(name: str, include_path: list[str] | None = None, metadata: dict | None = None):
    """The lm-eval Task object called `name` (a single task, not a group)."""
    from lm_eval_audio.task_index import task_manager

    manager = task_manager([name], metadata, include_path)
    task = manager.load([name])["tasks"].get(name)
    if task is None or not hasattr(task, "construct_requests"):
        raise ValueError(f"{name!r} is a group; name one of its tasks for training")
    return task


def _split_docs(task, split: str) -> list:
    splits = {
        "train": (task.has_training_docs, task.training_docs, "training_split"),
        "validation": (task.has_validation_docs, task.validation_docs, "validation_split"),
        "test": (task.has_test_docs, task.test_docs, "test_split"),
    }
    if split not in splits:
        raise ValueError(f"data.split must be train, validation or test, got {split!r}")
    has, docs, key = splits[split]
    if not has():
        raise ValueError(f"task {task.config.task!r} has no {split} split (its YAML sets no {key})")
    return list(docs())


def _gold_choice(task, doc, choices: list[str], name: str) -> int:
    target = task.doc_to_target(doc)
    if isinstance(target, list):
        if len(target) != 1:
            raise ValueError(f"{name}: {len(target)} gold answers; training needs exactly one")
        target = target[0]
    if isinstance(target, int) and not isinstance(target, bool):
        if not 0 <= target < len(choices):
            raise ValueError(f"{name}: gold index {target} outside {len(choices)} choices")
        return target
    if isinstance(target, str) and target in choices:
        return choices.index(target)
    raise ValueError(f"{name}: gold target {target!r} is neither a choice index nor one of {choices}")


def task_examples(data: DataConfig, processor) -> list[Example]:
    """Examples of a task split, rendered by lm-eval's own request construction."""
    task = get_task(data.task, data.include_path, data.metadata)
    fmt = PromptFormat.from_processor(processor)
    chat = _chat_renderer(processor) if data.apply_chat_template else None
    output_type = task.OUTPUT_TYPE
    if output_type not in ("multiple_choice", "generate_until", "loglikelihood"):
        raise ValueError(f"task {data.task!r} has output_type {output_type}; cannot train on it")
    examples = []
    for i, doc in enumerate(_split_docs(task, data.split)):
        name = f"{data.task} {data.split} doc {i}"
        ctx = task.fewshot_context(
            doc, 0, system_instruction=data.system_instruction,
            apply_chat_template=data.apply_chat_template, chat_template=chat,
        )
        requests = task.construct_requests(
            doc, ctx, metadata=(data.task, i, 1), apply_chat_template=data.apply_chat_template, chat_template=chat,
        )
        requests = requests if isinstance(requests, list) else [requests]
        if output_type == "multiple_choice":
            gold = _gold_choice(task, doc, task.doc_to_choice(doc), name)
            args, append_eos = requests[gold].args, False
            answer = args[1]
        elif output_type == "loglikelihood":
            args, append_eos = requests[0].args, False
            answer = args[1]
        else:
            args, append_eos = requests[0].args, True
            target = task.doc_to_target(doc)
            if isinstance(target, int) and task.config.doc_to_choice is not None:
                target = task.doc_to_choice(doc)[target]
            answer = f"{task.config.target_delimiter}{target}"
        clips = as_clip_list(args[2].get("audio")) if len(args) > 2 and isinstance(args[2], dict) else []
        prompt = build_prompt(args[0], len(clips), fmt, mode=data.mode, name=name,
                              spoken=[clip_transcript(c) for c in clips])
        if data.mode == "text":
            clips = []
        examples.append(Example(name=name, prompt=prompt, answer=answer, clips=clips, append_eos=append_eos))
    return examples


# -- JSONL conversations ----------------------------------------------------------------------

_ROLE_ALIASES = {"human": "user", "gpt": "assistant", "user": "user", "assistant": "assistant", "system": "system"}


def _messages(record: dict, where: str) -> list[dict]:
    # ms-swift and LLaMA-Factory's OpenAI-style layout (role/content) or ShareGPT's (from/value).
    raw = record.get("messages", record.get("conversations"))
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{where}: needs a non-empty 'messages' list")
    out = []
    for j, m in enumerate(raw):
        role = _ROLE_ALIASES.get(str(m.get("role", m.get("from", ""))).lower())
        content = m.get("content", m.get("value"))
        if role is None or not isinstance(content, str):
            raise ValueError(f"{where}, message {j}: needs role user/assistant/system and string content, got {m}")
        out.append({"role": role, "content": content})
    if out[-1]["role"] != "assistant":
        raise ValueError(f"{where}: the last message must be the assistant's answer (it carries the loss)")
    return out


def _resolve_audio(item: Any, base: Path, where: str):
    if isinstance(item, str):
        p = Path(item).expanduser()
        p = p if p.is_absolute() else base / p
        if not p.is_file():
            raise AudioError(f"{where}: audio file not found: {p}")
        return str(p)
    if isinstance(item, dict):
        return item
    raise AudioError(f"{where}: audio entries must be paths, got {type(item).__name__}")


def jsonl_examples(path: str | Path, processor, *, mode: str = "auto", apply_chat_template: bool = True) -> list[Example]:
    """Examples from a JSONL of `{"messages": [...], "audios": [...]}` records.

    The last assistant message is the answer (only it carries loss); everything before it is
    the prompt. With `apply_chat_template` the prompt is the processor's chat template with a
    generation prompt, and the answer ends with the template's end of turn; without it, the
    turns' contents are joined by newlines and the answer ends with the end token. `<audio>`
    marks where each clip goes (none: clips first, as `build_prompt` places them).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training JSONL not found: {path}")
    fmt, tokenizer = PromptFormat.from_processor(processor), processor.tokenizer
    examples = []
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}, line {line_no}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not valid JSON ({e})") from e
            messages = _messages(record, where)
            clips = [_resolve_audio(a, path.parent, where) for a in as_clip_list(record.get("audios"))]
            history, answer = messages[:-1], messages[-1]["content"]
            if apply_chat_template:
                context = render_chat(processor, history)
                end_of_turn = _chat_end_of_turn(tokenizer)
                answer, append_eos = answer + end_of_turn, not end_of_turn
            else:
                context = "\n".join(m["content"] for m in history if m["role"] != "system")
                append_eos = True
            prompt = build_prompt(context, len(clips), fmt, mode=mode, name=where)
            examples.append(
                Example(name=where, prompt=prompt, answer=answer, clips=[] if mode == "text" else clips,
                        append_eos=append_eos)
            )
    return examples


def _chat_end_of_turn(tokenizer) -> str:
    # The text the chat template puts after an assistant message's content (ChatML: <|im_end|>),
    # found by rendering a probe rather than assuming the template.
    probe = "\x00probe\x00"
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": probe}], tokenize=False
    )
    tail = text[text.index(probe) + len(probe):]
    return tail.rstrip("\n")
