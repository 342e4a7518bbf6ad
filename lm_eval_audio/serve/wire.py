"""What audio looks like on the wire to an OpenAI-compatible server.

Chat requests carry each clip as an `input_audio` content part (`{"data": <base64>, "format":
"wav"}`), transcription requests as a multipart `file`. Either way the bytes are a WAV of the
clip after our one decoder (`lm_eval_audio.audio.decode_audio`: 16 kHz, mono, validated), so a
server sees exactly the samples a local model class would.

Messages are built in two steps so that a run never holds every clip's base64 in memory:
`place_audio` puts a small reference (`{"lm_eval_audio_clip": <clip key>}`) where each clip goes,
and `materialise` swaps the references for the encoded audio right before a request is sent.
The references hold content keys (`lm_eval_audio.audio.clip_key`), so a request's JSON, and with
it lm-eval's cache key, changes whenever its audio does.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

import numpy as np

from lm_eval_audio.audio import SAMPLE_RATE
from lm_eval_audio.audio import wav_bytes as _wav_file
from lm_eval_audio.arch.prompts import AUDIO_PLACEHOLDER

CLIP_REF = "lm_eval_audio_clip"
WAV_SUBTYPES = ("FLOAT", "PCM_16")


def wav_bytes(array: np.ndarray, subtype: str = "FLOAT") -> bytes:
    """A 16 kHz mono WAV file of `array`. FLOAT keeps the decoder's samples bit for bit;
    PCM_16 is for endpoints that refuse float WAV (it quantises, so answers may differ)."""
    if subtype not in WAV_SUBTYPES:
        raise ValueError(f"unknown WAV subtype {subtype!r}; choose from {', '.join(WAV_SUBTYPES)}")
    return _wav_file(array, SAMPLE_RATE, subtype)


def input_audio_part(array: np.ndarray, subtype: str = "FLOAT") -> dict:
    """One OpenAI `input_audio` content part."""
    data = base64.b64encode(wav_bytes(array, subtype)).decode("ascii")
    return {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}


def _as_parts(content: Any) -> list[dict]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content)


def _split_placeholders(parts: list[dict], refs: list[dict], used: list[int]) -> list[dict]:
    out = []
    for part in parts:
        if part.get("type") != "text" or AUDIO_PLACEHOLDER not in part.get("text", ""):
            out.append(part)
            continue
        pieces = part["text"].split(AUDIO_PLACEHOLDER)
        for i, piece in enumerate(pieces):
            if i:
                out.append(refs[used[0]])
                used[0] += 1
            if piece:
                out.append({"type": "text", "text": piece})
    return out


def place_audio(messages: list[dict], clip_keys: list[str], *, name: str = "request") -> list[dict]:
    """Chat messages with one audio reference per clip, in the order the clips come.

    The rule is the one `lm_eval_audio.prompts.build_prompt` applies to local models: each
    `<audio>` placeholder (in any turn, in order) takes the next clip; with no placeholder the
    clips open the last user turn. A placeholder count that is neither 0 nor the clip count is
    an error naming the request. Empty text parts left by a placeholder are dropped.
    """
    messages = copy.deepcopy(messages)
    n_placeholders = sum(
        part.get("text", "").count(AUDIO_PLACEHOLDER)
        for m in messages
        for part in _as_parts(m.get("content"))
        if part.get("type") == "text"
    )
    if not clip_keys:
        # As for local models: a text-only request loses its placeholders.
        for m in messages:
            if isinstance(m.get("content"), str):
                m["content"] = m["content"].replace(AUDIO_PLACEHOLDER, "")
            elif isinstance(m.get("content"), list):
                m["content"] = _split_placeholders(m["content"], [], [0])
        return messages
    if n_placeholders not in (0, len(clip_keys)):
        raise ValueError(
            f"{name}: context has {n_placeholders} {AUDIO_PLACEHOLDER} placeholders for {len(clip_keys)} audio clips"
        )
    refs = [{"type": "input_audio", "input_audio": {CLIP_REF: key}} for key in clip_keys]
    if n_placeholders:
        used = [0]
        for m in messages:
            parts = _as_parts(m.get("content"))
            if any(p.get("type") == "text" and AUDIO_PLACEHOLDER in p.get("text", "") for p in parts):
                m["content"] = _split_placeholders(parts, refs, used)
        return messages
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    if not users:
        raise ValueError(f"{name}: no user turn to put the audio in")
    last = messages[users[-1]]
    last["content"] = refs + [p for p in _as_parts(last.get("content")) if p.get("type") != "text" or p["text"]]
    return messages


def clip_refs(messages: list[dict]) -> list[str]:
    """The clip keys referenced by `messages`, in order."""
    return [
        part["input_audio"][CLIP_REF]
        for m in messages
        if isinstance(m.get("content"), list)
        for part in m["content"]
        if part.get("type") == "input_audio" and CLIP_REF in part.get("input_audio", {})
    ]


def materialise(messages: list[dict], arrays: dict[str, np.ndarray], subtype: str = "FLOAT") -> list[dict]:
    """`messages` with every audio reference replaced by its `input_audio` part (a new list)."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            m = dict(m, content=[
                input_audio_part(arrays[p["input_audio"][CLIP_REF]], subtype)
                if p.get("type") == "input_audio" and CLIP_REF in p.get("input_audio", {}) else p
                for p in content
            ])
        out.append(m)
    return out
