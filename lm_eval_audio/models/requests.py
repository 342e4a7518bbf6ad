"""lm-eval requests -> `AudioRequest`s: prompt placed, ids tokenised, mode checked. One
preparation for every audio model class (`hf_audio.py` and its specialisations)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from lm_eval.api.instance import Instance

from lm_eval_audio.audio import as_clip_list, clip_key, clip_transcript, duration_seconds
from lm_eval_audio.arch.prompts import PromptFormat, build_prompt, own_text

logger = logging.getLogger(__name__)

_TOKENS_PER_SECOND = 25  # Whisper-style encoders: 750 audio positions per 30 s; only a sort key
_UNKNOWN_SECONDS = 30.0


@dataclass
class AudioRequest:
    """One lm-eval request prepared for our batching (its clips are references until its batch runs)."""

    index: int
    name: str
    prompt: str
    clips: list
    clip_keys: tuple[str, ...]
    task: str = "request"
    continuation: str = ""
    gen_kwargs: dict = field(default_factory=dict)
    context_ids: list[int] = field(default_factory=list)
    continuation_ids: list[int] = field(default_factory=list)

    @property
    def context_key(self) -> tuple:
        """Requests with equal keys share one context forward."""
        return (self.prompt, self.clip_keys)

    def approx_len(self) -> int:
        """Sort key: text tokens plus an estimate of the audio positions."""
        seconds = sum(duration_seconds(c) or _UNKNOWN_SECONDS for c in self.clips)
        return len(self.context_ids) + len(self.continuation_ids) + int(seconds * _TOKENS_PER_SECOND)


def request_clips(req: Instance) -> list:
    """The clips an lm-eval request carries (its third argument's "audio")."""
    extra = req.args[2] if len(req.args) > 2 else None
    return as_clip_list(extra.get("audio")) if isinstance(extra, dict) else []


def request_name(req: Instance) -> str:
    """How errors name a request: its task and document."""
    return f"{req.task_name or 'request'} doc {req.doc_id}"


def check_mode(requests: list[Instance], mode: str, model: str) -> int:
    """mode=text must leave a question; mode=audio says what text it drops.

    Returns the number of documents whose own text mode=audio dropped (for clips that name the
    text they speak: whose spoken text it removed).
    """
    texts: dict[str, dict] = {}  # task -> doc_id -> own text, for requests that carry audio
    spoken: dict[str, dict] = {}  # the same for clips that name the text they speak: that text
    for req in requests:
        clips = request_clips(req)
        if clips:
            texts.setdefault(req.task_name or "request", {}).setdefault(req.doc_id, own_text(req.args[0]))
            said = [t for t in map(clip_transcript, clips) if t]
            if said:
                spoken.setdefault(req.task_name or "request", {}).setdefault(req.doc_id, " / ".join(said))
    if mode == "text":
        for task, by_doc in texts.items():
            blank = [d for d, t in by_doc.items() if not t]
            if blank or (len(by_doc) > 1 and len(set(by_doc.values())) == 1):
                what = (f"doc {blank[0]} has no text besides its audio" if blank else
                        f"all {len(by_doc)} documents have the same text {next(iter(by_doc.values()))!r}")
                raise ValueError(
                    f"{model} mode=text on {task}: dropping the audio leaves no question text "
                    f"({what}); the question is in the audio. Use mode=auto or mode=audio, or the "
                    f"task's text twin (mmlu_twin_* for spoken_mmlu_*)"
                )
    elif mode == "audio":
        dropped = [(task, d, t) for task, by_doc in texts.items() for d, t in by_doc.items()
                   if t and d not in spoken.get(task, {})]
        removed = [(task, d, t) for task, by_doc in spoken.items() for d, t in by_doc.items()]
        if removed:
            task, doc, text = removed[0]
            logger.warning(
                "%s mode=audio: the spoken text of %d document(s) was removed from their context, the model "
                "hears it instead (e.g. %s doc %s: %r)", model, len(removed), task, doc, text[:80],
            )
        if dropped:
            task, doc, text = dropped[0]
            logger.warning(
                "%s mode=audio: the text of %d document(s) was dropped, the model hears the audio "
                "only (e.g. %s doc %s: %r)", model, len(dropped), task, doc, text[:80],
            )
        return len(dropped) + len(removed)
    return 0


def prepare(lm, requests: list[Instance], fmt: PromptFormat, *, mode: str, generation: bool,
            indices: list[int] | None = None) -> list[AudioRequest]:
    """AudioRequests for `requests` (those at `indices`, default all), tokenised as lm-eval's
    `hf` model tokenises (`lm.tok_encode`, `lm._encode_pair`)."""
    prepared = []
    for i in range(len(requests)) if indices is None else indices:
        req = requests[i]
        name = request_name(req)
        clips = [] if mode == "text" else request_clips(req)
        prompt = build_prompt(req.args[0], len(clips), fmt, mode=mode, name=name,
                              spoken=[clip_transcript(c) for c in clips])
        r = AudioRequest(index=i, name=name, prompt=prompt, clips=clips,
                         clip_keys=tuple(clip_key(c) for c in clips), task=req.task_name or "request")
        if generation:
            r.gen_kwargs = dict(req.args[1])
            r.context_ids = lm.tok_encode(prompt)
        else:
            r.continuation = req.args[1]
            r.context_ids, r.continuation_ids = lm._encode_pair(prompt, req.args[1])
            if not r.continuation_ids:
                raise ValueError(f"{name}: empty continuation {req.args[1]!r}")
        prepared.append(r)
    return prepared
