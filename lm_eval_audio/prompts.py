"""The one place that decides where Qwen2-Audio's audio tokens go in a prompt, for every mode.

lm-eval hands the model a context string (already chat-formatted when the user passed
`--apply_chat_template`) plus the request's clips. The convention of lm-eval's audio tasks is
an `<audio>` placeholder per clip; without one, clips come first, as Qwen2-Audio was trained
(in chat form: at the start of the last user turn, rendered as its chat template does).
"""

from __future__ import annotations

AUDIO_PLACEHOLDER = "<audio>"
AUDIO_TOKEN = "<|AUDIO|>"
BASE_CLIP = "<|audio_bos|><|AUDIO|><|audio_eos|>"
USER_TURN = "<|im_start|>user\n"
END_TURN = "<|im_end|>"
MODES = ("auto", "text", "audio")


def _chat_clip(n: int) -> str:
    # Exactly what Qwen2-Audio-Instruct's chat template renders for an audio content item.
    return f"Audio {n}: {BASE_CLIP}\n"


def build_prompt(context: str, n_clips: int, *, mode: str = "auto", name: str = "request") -> str:
    """Return the prompt text with one `<|AUDIO|>` per clip, placed for the given mode.

    - `auto`/`audio` with clips: `<audio>` placeholders are replaced in order; with none,
      the clips are put first (in a chat-formatted context: first in the last user turn).
    - `audio`: the context's own text is dropped (audio only, as the seed's spoken-MMLU run);
      chat framing (system turn, generation prompt) is kept.
    - `text` (or no clips): placeholders are removed and the text is used as is.
    `name` identifies the request in errors.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {MODES}")
    chat = USER_TURN in context
    if mode == "text" or n_clips == 0:
        if mode == "audio":
            raise ValueError(f"{name}: mode=audio but the request carries no audio")
        return context.replace(AUDIO_PLACEHOLDER, "")

    n_placeholders = context.count(AUDIO_PLACEHOLDER)
    if n_placeholders not in (0, n_clips):
        raise ValueError(
            f"{name}: context has {n_placeholders} {AUDIO_PLACEHOLDER} placeholders for {n_clips} audio clips"
        )

    if mode == "audio":
        clips = "".join(_chat_clip(i + 1) if chat else BASE_CLIP for i in range(n_clips))
        if not chat:
            return clips
        start = context.rindex(USER_TURN) + len(USER_TURN)
        end = context.find(END_TURN, start)
        end = len(context) if end < 0 else end
        # Exactly the chat template's rendering of a user turn holding only audio items
        # ("Audio 1: ...<|audio_eos|>\n<|im_end|>"), which is what the seed study sent.
        return context[:start] + clips + context[end:]

    if n_placeholders:
        parts = context.split(AUDIO_PLACEHOLDER)
        out = parts[0]
        for i, part in enumerate(parts[1:]):
            out += (_chat_clip(i + 1) if chat else BASE_CLIP) + part
        return out
    if chat:
        start = context.rindex(USER_TURN) + len(USER_TURN)
        clips = "".join(_chat_clip(i + 1) for i in range(n_clips))
        return context[:start] + clips + context[start:]
    return BASE_CLIP * n_clips + context


def own_text(context: str) -> str:
    """The text a request's context carries of its own: placeholders removed and, in a
    chat-formatted context, only the last user turn (system turn and framing are not the
    document's). What `mode=text` keeps as the question and `mode=audio` drops."""
    text = context.replace(AUDIO_PLACEHOLDER, "")
    if USER_TURN in text:
        start = text.rindex(USER_TURN) + len(USER_TURN)
        end = text.find(END_TURN, start)
        text = text[start:] if end < 0 else text[start:end]
    return text.strip()
