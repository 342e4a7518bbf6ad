"""Prompts of a tokenizer backend that never reads control tokens out of text (mistral-common).

Voxtral's tokenizer (mistral-common's Tekken behind transformers' `MistralCommonBackend`) builds
a chat as token ids: `[INST]`, `[BEGIN_AUDIO]`, `[AUDIO]` are ids that no text encodes to (a task
text that says "[INST]" stays text). The prompt layer works on text (audio placement, modes), so
the ids travel in it: each control id as an invisible marker, the text between them as text.
`encode` turns such a prompt back into the backend's ids exactly.
"""

from __future__ import annotations

import re

_MARK = "\u2063"  # INVISIBLE SEPARATOR, as the prompt layer's other sentinels
_MARKER = re.compile(rf"{_MARK}id:(\d+){_MARK}")


class ControlIds:
    """Control ids of `tokenizer` carried in prompt text as markers."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.control = frozenset(tokenizer.all_special_ids)

    @staticmethod
    def marker(token_id: int) -> str:
        """The text that stands for control id `token_id` in a prompt."""
        return f"{_MARK}id:{int(token_id)}{_MARK}"

    @staticmethod
    def id_of(marker: str) -> int:
        """The control id a marker stands for."""
        match = _MARKER.fullmatch(marker)
        if match is None:
            raise ValueError(f"{marker!r} is not a control-id marker")
        return int(match.group(1))

    def to_text(self, ids: list[int]) -> str:
        """`ids` as prompt text: control ids as markers, the text between them decoded."""
        out, span = [], []
        for t in ids:
            if t in self.control:
                if span:
                    out.append(self._decode(span))
                    span = []
                out.append(self.marker(t))
            else:
                span.append(t)
        if span:
            out.append(self._decode(span))
        return "".join(out)

    def encode(self, text: str) -> list[int]:
        """The backend's ids of a prompt: markers as their ids, the text between them encoded."""
        ids: list[int] = []
        pos = 0
        for match in _MARKER.finditer(text):
            ids += self._encode(text[pos: match.start()])
            ids.append(int(match.group(1)))
            pos = match.end()
        return ids + self._encode(text[pos:])

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False) if text else []

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
