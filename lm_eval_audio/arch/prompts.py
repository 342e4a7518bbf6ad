"""The one place that decides where a model's audio goes in a prompt, for every mode.

Nothing here is written for one model: the audio placeholder comes from the processor
(`processor.audio_token`, with `audio_bos_token`/`audio_eos_token` around it where the
processor has them), and in chat form the clips are rendered by the processor's own chat
template with audio content items.

lm-eval hands a model a context string, already chat-formatted when the user passed
`--apply_chat_template` (through the model's `apply_chat_template`, i.e. `render_chat` here),
plus the request's clips. The convention of lm-eval's audio tasks is an `<audio>` placeholder
per clip; without one, clips come first (in chat form: where the chat template puts an audio
item at the start of the last user turn). `render_chat` marks the last user turn with
invisible sentinels, so that `build_prompt` can later place the request's clips, or drop the
turn's own text (`mode=audio`), without knowing the template's syntax.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lm_eval_audio.arch.control_ids import ControlIds

AUDIO_PLACEHOLDER = "<audio>"
MODES = ("auto", "text", "audio")

# Invisible markers that render_chat leaves in a chat-formatted context (U+2063 INVISIBLE
# SEPARATOR around a name: no tokenizer or task text carries them). build_prompt always
# removes them, so no model ever sees one.
CLIP_SLOT = "\u2063clips\u2063"  # where the clips go when the turn has no <audio>
TEXT_OPEN = "\u2063doc\u2063"  # the last user turn's own text starts here...
TEXT_CLOSE = "\u2063/doc\u2063"  # ...and ends here
_SENTINELS = (CLIP_SLOT, TEXT_OPEN, TEXT_CLOSE)
_PROBE = "\u2063probe\u2063"


@dataclass
class PromptFormat:
    """How one model's processor writes audio into text.

    `placeholder` is the token the processor repeats to a clip's audio positions; `processor_clip`
    the text of one clip as a processor takes it (the placeholder with the processor's
    begin/end-of-audio tokens around it, where it has them); `expansion` what the processor turns
    one placeholder into, with the run of placeholders collapsed to one (the placeholder itself,
    or for Gemma 3n `\\n\\n<start_of_audio><audio_soft_token><end_of_audio>\\n\\n`): prompts carry
    it, so their ids are the processor's once the placeholder is repeated. `processor` renders chat clips.
    """

    placeholder: str
    processor_clip: str
    expansion: str = ""
    processor: object | None = field(default=None, repr=False)
    codec: ControlIds | None = field(default=None, repr=False)  # the "control_ids" prompt route
    _chat_clips: dict = field(default_factory=dict, repr=False)

    @property
    def placeholder_id(self) -> int:
        """The token id of the placeholder."""
        if self.codec is not None:
            return self.codec.id_of(self.placeholder)
        return self.processor.tokenizer.convert_tokens_to_ids(self.placeholder)

    @property
    def base_clip(self) -> str:
        """The text of one clip outside a chat, as the model's prompt carries it."""
        return self.processor_clip.replace(self.placeholder, self.expansion or self.placeholder)

    @classmethod
    def from_processor(cls, processor, route: str = "text") -> PromptFormat:
        """The format of a transformers processor that takes audio (reads `audio_token`; the
        expansion of one placeholder is read off the processor's output for a second of silence).

        `route` "control_ids" (facts.ArchFacts.prompt_route): the backend renders chats to ids;
        control tokens are markers (`control_ids.py`) and one clip is what the backend's own chat
        encoding puts before a turn's text, its run of audio ids collapsed to one.
        """
        token = getattr(processor, "audio_token", None) or getattr(
            getattr(processor, "tokenizer", None), "audio_token", None)
        if not token:
            raise ValueError(f"{type(processor).__name__} has no audio_token: it does not take audio")
        if route == "control_ids":
            codec = ControlIds(processor.tokenizer)
            marker = codec.marker(processor.tokenizer.convert_tokens_to_ids(token))
            fmt = cls(placeholder=marker, processor_clip=marker, expansion=marker, processor=processor, codec=codec)
            fmt.processor_clip = fmt.chat_clips(1)
            return fmt
        expansion = _expansion(processor, token)
        if expansion != token:  # it writes its own begin/end-of-audio tokens around the run (Music Flamingo)
            return cls(placeholder=token, processor_clip=token, expansion=expansion, processor=processor)
        bos = getattr(processor, "audio_bos_token", None) or ""
        eos = getattr(processor, "audio_eos_token", None) or ""
        return cls(placeholder=token, processor_clip=f"{bos}{token}{eos}", expansion=expansion, processor=processor)

    def chat_clips(self, n: int) -> str:
        """What the processor's chat template renders for `n` audio items opening a user turn.

        Found by rendering the template with and without the items (so Qwen2-Audio's
        "Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\\n" comes from its template, not from here).
        """
        if n not in self._chat_clips:
            if self.processor is None:
                raise ValueError("a chat-formatted prompt needs the processor's chat template")

            def before_probe(content: list[dict]) -> str:
                text = _render(self.processor, [{"role": "user", "content": content}], True, codec=self.codec)
                return text[: text.index(_PROBE)]

            probe = {"type": "text", "text": _PROBE}
            # a backend that encodes the audio itself gets a real (silent) clip, not a name
            item = {"type": "audio", "base64": _silence_base64(self.processor)} if self.codec else \
                {"type": "audio", "audio": "clip.wav"}
            with_audio = before_probe([item] * n + [probe])
            without = before_probe([probe])
            if not with_audio.startswith(without) or self.placeholder not in with_audio[len(without):]:
                raise ValueError(
                    f"{type(self.processor).__name__}'s chat template does not render audio items before a "
                    f"turn's text; put <audio> where each clip goes in the task's prompt")
            self._chat_clips[n] = with_audio[len(without):].replace(self.placeholder, self.expansion or self.placeholder)
        return self._chat_clips[n]

    def chat_clip(self, i: int) -> str:
        """The rendering of the i-th (1-based) of several clips, for an `<audio>` placeholder."""
        return self.chat_clips(i)[len(self.chat_clips(i - 1)) if i > 1 else 0:]


def _expansion(processor, token: str) -> str:
    """What `processor` turns one `token` into (for a second of silence), the token run collapsed."""
    import numpy as np

    sampling_rate = int(_extractor(processor).sampling_rate)
    tokenizer = processor.tokenizer
    token_id = tokenizer.convert_tokens_to_ids(token)
    ids = processor(text=[token], audio=[np.zeros(sampling_rate, dtype=np.float32)], sampling_rate=sampling_rate,
                    return_tensors="pt")["input_ids"][0].tolist()
    added = tokenizer("")["input_ids"]  # what the tokenizer adds to any text (a BOS), not the expansion's
    if added and ids[: len(added)] == added:
        ids = ids[len(added):]
    collapsed = [t for i, t in enumerate(ids) if t != token_id or i == 0 or ids[i - 1] != token_id]
    return tokenizer.decode(collapsed, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def _silence_base64(processor) -> str:
    """A second of silence as a base64 WAV file (the form a backend that loads audio itself takes)."""
    import numpy as np

    from lm_eval_audio.audio import wav_base64

    rate = int(_extractor(processor).sampling_rate)
    return wav_base64(np.zeros(rate, dtype=np.float32), rate)


def _extractor(processor):
    return getattr(processor, "feature_extractor", None) or getattr(processor, "audio_processor", None)


def _render(processor, messages: list[dict], add_generation_prompt: bool, codec: ControlIds | None = None,
            **kwargs) -> str:
    if codec is not None:  # the backend renders to ids; each clip's run of audio ids becomes one
        ids = processor.apply_chat_template(
            messages, tokenize=True, return_dict=True, return_tensors="pt",
            continue_final_message=not add_generation_prompt, **kwargs)["input_ids"][0].tolist()
        audio_id = processor.tokenizer.convert_tokens_to_ids(processor.audio_token)
        ids = [t for i, t in enumerate(ids) if t != audio_id or i == 0 or ids[i - 1] != audio_id]
        return codec.to_text(ids)
    out = processor.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt,
        continue_final_message=not add_generation_prompt, **kwargs)
    return out if isinstance(out, str) else out[0]


def render_chat(processor, chat_history: list[dict], add_generation_prompt: bool = True,
                codec: ControlIds | None = None, **kwargs) -> str:
    """lm-eval's chat history rendered by the processor's own chat template (or, with `codec`,
    by its tokenizer backend, control ids as markers).

    The last user turn's text is wrapped in sentinels (and a clip slot opens it) for
    `build_prompt`; messages become text content items, as processor templates expect.
    """
    last_user = max((i for i, m in enumerate(chat_history) if m["role"] == "user"), default=-1)
    messages = []
    for i, m in enumerate(chat_history):
        text = m["content"]
        if i == last_user:
            text = f"{CLIP_SLOT}{TEXT_OPEN}{text}{TEXT_CLOSE}"
        messages.append({"role": m["role"], "content": [{"type": "text", "text": text}]})
    return _render(processor, messages, add_generation_prompt, codec=codec, **kwargs)


def strip_sentinels(text: str) -> str:
    """The context without render_chat's markers (what a text-only model sees)."""
    for s in _SENTINELS:
        text = text.replace(s, "")
    return text


def build_prompt(context: str, n_clips: int, fmt: PromptFormat, *, mode: str = "auto", name: str = "request",
                 spoken: list[str | None] | None = None) -> str:
    """Return the prompt text with one `fmt.placeholder` per clip, placed for the given mode.

    - `auto`/`audio` with clips: `<audio>` placeholders are replaced in order; with none,
      the clips are put first (in a chat-formatted context: first in the last user turn).
    - `audio`: the context's own text is dropped (audio only, as the seed's spoken-MMLU run);
      chat framing (system turn, generation prompt) is kept. When the clips name the text they
      speak (`spoken`, one per clip: a spoken twin's clips), only that text is removed, each
      clip taking its text's place; the rest of the context (instructions, few-shot examples,
      description) stays text.
    - `text` (or no clips): placeholders are removed and the text is used as is.
    `name` identifies the request in errors.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {MODES}")
    chat = TEXT_OPEN in context
    if mode == "text" or n_clips == 0:
        if mode == "audio":
            raise ValueError(f"{name}: mode=audio but the request carries no audio")
        return strip_sentinels(context.replace(AUDIO_PLACEHOLDER, ""))

    n_placeholders = context.count(AUDIO_PLACEHOLDER)
    if n_placeholders not in (0, n_clips):
        raise ValueError(
            f"{name}: context has {n_placeholders} {AUDIO_PLACEHOLDER} placeholders for {n_clips} audio clips"
        )

    if mode == "audio" and spoken and any(spoken):
        context = _spoken_to_placeholders(context, spoken, n_clips, name)
        n_placeholders = n_clips
    elif mode == "audio":
        if not chat:
            return fmt.base_clip * n_clips
        # Exactly the chat template's rendering of a user turn holding only audio items.
        start = context.index(CLIP_SLOT) if CLIP_SLOT in context else context.index(TEXT_OPEN)
        end = context.index(TEXT_CLOSE) + len(TEXT_CLOSE)
        return strip_sentinels(context[:start] + fmt.chat_clips(n_clips) + context[end:])

    if n_placeholders:
        parts = context.split(AUDIO_PLACEHOLDER)
        out = parts[0]
        for i, part in enumerate(parts[1:]):
            out += (fmt.chat_clip(i + 1) if chat else fmt.base_clip) + part
        return strip_sentinels(out)
    if chat:
        return strip_sentinels(context.replace(CLIP_SLOT, fmt.chat_clips(n_clips), 1))
    return fmt.base_clip * n_clips + context


def _spoken_to_placeholders(context: str, spoken: list[str | None], n_clips: int, name: str) -> str:
    """`context` with each clip's spoken text replaced by an `<audio>` placeholder, inside the
    document's own text (the last user turn of a chat-formatted context)."""
    if len(spoken) != n_clips or not all(spoken):
        raise ValueError(f"{name}: {sum(1 for t in spoken if t)} of {n_clips} clips name the text they speak; "
                         "a request's clips must all name it or none")
    if AUDIO_PLACEHOLDER in context:
        raise ValueError(f"{name}: the context has {AUDIO_PLACEHOLDER} placeholders and clips that name their "
                         "text: only one of the two can say where the clips go")
    start, end = 0, len(context)
    if TEXT_OPEN in context:
        start, end = context.index(TEXT_OPEN) + len(TEXT_OPEN), context.index(TEXT_CLOSE)
    region = context[start:end]
    # Right to left, each before the next: few-shot examples precede the document, so the
    # document's own text is the last occurrence.
    limit = len(region)
    for text in reversed(spoken):
        for candidate in dict.fromkeys((text, text.strip())):
            at = region.rfind(candidate, 0, limit)
            if at >= 0:
                break
        if at < 0:
            raise ValueError(f"{name}: mode=audio: the text its clip speaks ({text[:60]!r}) is not in the "
                             "context, so it cannot be removed from it")
        region = region[:at] + AUDIO_PLACEHOLDER + region[at + len(candidate):]
        limit = at
    return context[:start] + region + context[end:]


def own_text(context: str) -> str:
    """The text a request's context carries of its own: placeholders removed and, in a
    chat-formatted context, only the last user turn (system turn and framing are not the
    document's). What `mode=text` keeps as the question and `mode=audio` drops."""
    text = context.replace(AUDIO_PLACEHOLDER, "")
    if TEXT_OPEN in text:
        text = text[text.index(TEXT_OPEN) + len(TEXT_OPEN): text.index(TEXT_CLOSE)]
    return strip_sentinels(text).strip()
