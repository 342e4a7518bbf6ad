"""`label_index`: map a free-form answer to the index of one of a task's labels.

Built for prompts like the seed study's timbre-range one ("answer 0 for narrow, 1 for moderate
and 2 for wide. Answer ONLY with a number"), where a model may answer "2", "2.", "Answer: 2",
"wide", "2 (wide)" or "It is a wide range." The answer is read as:

- every standalone index digit (`0`..`n-1`, not part of a longer number or a decimal) and every
  label word (whole word, case-insensitive, plus optional synonyms) found in the text;
- a lone number word ("two") when it is the whole answer;
- if all of these name one label, that label's index as a string; if they name none, or name
  different labels ("0 for narrow, 1 for moderate..." echoed back, "1 or 2"), the fallback
  `[invalid]`, which scores as wrong and is counted by the task's parse-failure metric.

Nothing is ever guessed: an answer that is not clearly one label stays unmapped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from lm_eval.api.filter import Filter
from lm_eval.api.registry import register_filter

INVALID = "[invalid]"

_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@register_filter("label_index")
class LabelIndexFilter(Filter):
    """Maps each response to the index ("0", "1", ...) of the one label it names, else `fallback`."""

    def __init__(
        self,
        labels: Sequence[str],
        synonyms: dict[str, Sequence[str]] | None = None,
        fallback: str = INVALID,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not labels or len(labels) > 10:
            raise ValueError(f"label_index needs 1-10 labels, got {labels!r}")
        self.labels = [str(label).lower() for label in labels]
        self.fallback = fallback
        words: dict[str, int] = {label: i for i, label in enumerate(self.labels)}
        for label, alts in (synonyms or {}).items():
            if str(label).lower() not in words:
                raise ValueError(f"label_index: synonym given for unknown label {label!r}; labels are {self.labels}")
            for alt in alts:
                words[str(alt).lower()] = words[str(label).lower()]
        self._words = words
        alternation = "|".join(sorted(map(re.escape, words), key=len, reverse=True))
        self._word_re = re.compile(rf"\b({alternation})\b", re.IGNORECASE)
        last_digit = len(self.labels) - 1
        # A digit that is not part of a longer number or a decimal ("2", "2.", "(2)", not "12" or "2.5").
        self._digit_re = re.compile(rf"(?<![\d.,])([0-{last_digit}])(?!\d|[.,]\d)")

    def parse(self, text: str) -> str:
        """The index named by `text` as a string, or the fallback when it names none or several."""
        if not isinstance(text, str):
            return self.fallback
        found = {int(m.group(1)) for m in self._digit_re.finditer(text)}
        found |= {self._words[m.group(1).lower()] for m in self._word_re.finditer(text)}
        whole = re.sub(r"[\W_]+", " ", text).strip().lower()
        if whole in _NUMBER_WORDS[: len(self.labels)]:
            found.add(_NUMBER_WORDS.index(whole))
        return str(found.pop()) if len(found) == 1 else self.fallback

    def apply(self, resps: Iterable[list[str]], docs: list[dict]) -> list[list[str]]:
        return [[self.parse(r) for r in inst] for inst in resps]


class StrictLabelFilter(Filter):
    """`strict_label`: the seed study's timbre scoring. An answer counts only when it is exactly
    one of the index digits ("0", "1", ... as the seed compared the raw response with the label
    digit); anything else becomes `fallback`, counted by the task's parse-failure metric."""

    def __init__(self, n_labels: int = 3, fallback: str = INVALID, **kwargs) -> None:
        super().__init__(**kwargs)
        self.digits = {str(i) for i in range(int(n_labels))}
        self.fallback = fallback

    def apply(self, resps: Iterable[list[str]], docs: list[dict]) -> list[list[str]]:
        return [[r if r in self.digits else self.fallback for r in inst] for inst in resps]
