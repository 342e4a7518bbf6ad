"""Map a free-form answer to one of the letters A-D, or to nothing.

The seed study asked its models to answer multiple-choice questions in free text. This filter
turns such answers into letters with explicit rules, strongest evidence first; an answer that
no rule maps stays unmapped (scored wrong, and counted by the `extraction_failure` metric).
It never guesses. Optionally an LLM judge (`lm_eval_audio.filters.judge`) is asked about the answers
the rules leave unmapped; the share it decides is the `judge_rate` metric.

Registered with lm-eval as filter `choice_letter` (see `lm_eval_audio.registration`).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence

from lm_eval.api.filter import Filter

logger = logging.getLogger(__name__)

LETTERS = ("A", "B", "C", "D")
UNMAPPED = "[unmapped]"


class Extracted(str):
    """A filtered answer: the letter (or UNMAPPED), remembering which rule produced it.

    A `str` so that lm-eval's metrics (exact_match) and sample logs treat it as the letter.
    """

    method: str

    def __new__(cls, value: str, method: str) -> "Extracted":
        obj = super().__new__(cls, value)
        obj.method = method
        return obj

    def __reduce__(self):  # keep `method` through pickling (multi-process gathers)
        return (Extracted, (str(self), self.method))


# Letters from other scripts that models (or their tokenizers) produce for A-D.
_HOMOGLYPHS = str.maketrans({"А": "A", "В": "B", "С": "C", "Α": "A", "Β": "B", "а": "a", "с": "c"})
_L = r"[A-Da-d]"
# The letter must stand alone: not followed by another letter or digit ("Apple", "B12").
_END = r"(?![A-Za-z0-9])"
# "answer is B", "Answer: (c)", "correct option is D", "réponse : B", "答案是B", "Ответ: B".
_MARKERS = (
    r"(?:the\s+)?(?:correct|right|best|final)?\s*(?:answer|option|choice|letter)"
    r"(?:\s+(?:is|would\s+be|will\s+be|should\s+be|must\s+be))?"
    r"(?:\s+(?:actually|clearly|definitely|probably|likely|therefore|thus|then|indeed))?"
    r"|respuesta(?:\s+correcta)?(?:\s+es)?|r[ée]ponse(?:\s+correcte)?(?:\s+est)?"
    r"|antwort(?:\s+ist)?|risposta(?:\s+corretta)?(?:\s+[èe])?|resposta(?:\s+correta)?(?:\s+[ée])?"
    r"|ответ|答案(?:是|为|為)?|正确答案(?:是|为)?|正確答案(?:是|為)?|正解(?:は)?|答え(?:は)?"
    r"|I\s+(?:choose|pick|select|would\s+(?:choose|pick|say)|'d\s+(?:go\s+with|choose|pick|say))"
    r"|(?:go|going)\s+with"
)
_MARKED = re.compile(
    rf"(?:{_MARKERS})\s*(?:[:：=\-–—]|\bis\b)?\s*(?:\"|'|“|«|「|\(|\[|（)?\s*(?:option\s+|choice\s+|letter\s+)?"
    rf"({_L}){_END}",
    re.IGNORECASE,
)
# Hedges between two letters: "A or B", "B and D", "A/B", "C, D".
# (Used with Pattern.match(text, pos), which anchors at pos.)
_HEDGE = re.compile(
    rf"\s*(?:\)|\])?\s*(?:or|and|/|,|&|oder|ou|o|y|et|或|和)\s*(?:option\s+|choice\s+)?(\(?)({_L}){_END}",
    re.IGNORECASE,
)
_PUNCT = " \t\r\n.,;:!?。，；：！？*_`\"'“”‘’«»「」()[]（）【】<>-–—"
# The whole answer is a letter, maybe wrapped: "B", "(b)", "**C.**", "Option D", "[A]".
_ALONE = re.compile(rf"^(?:option|choice|letter|answer)?\s*[(\[（【]?\s*({_L})\s*[)\]）】]?$", re.IGNORECASE)
# The answer starts with a labelled option: "B. Paris", "C) 42", "(D) none", "A: yes", "b) Rome".
# A lower-case label needs its punctuation ("a. Paris"); "a - ..." could be prose.
_LEADING = re.compile(r"^[(\[（]?\s*(?:([A-D])\s*(?:[.)\]）:：]|\s[-–—])|([a-d])\s*[.)\]）:：])(?:\s|$)")
# Unambiguous letter mentions inside prose: "(C)", "option B", "choice D", "letter A".
_MENTION = re.compile(rf"(?:([(\[（])\s*({_L})\s*[)\]）])|(?:\b(?:option|choice|letter)\s+({_L}){_END})", re.IGNORECASE)

# Words that can follow the letter "a" but never the article "a": "option a is wrong", "the
# answer is a because ...". Anything else after a bare lower-case "a" ("a matter", "a different
# approach", "a very good question") reads as the article.
_NOT_AFTER_ARTICLE = frozenset((
    "is", "was", "would", "will", "should", "seems", "looks", "sounds", "fits", "matches", "because",
    "since", "as", "and", "or", "but", "which", "that", "though", "also", "again", "instead",
    "isn't", "wasn't", "in", "of", "with",
))
_CLOSERS = ".,;:!?)]）\"'”»」。，；：！？"


def _is_letter(text: str, start: int, end: int) -> bool:
    """Whether the A-D character text[start:end] is the letter and not the English word "a".

    Upper-case letters and "b", "c", "d" (no English word reads so, and the caller's patterns
    already require them to stand alone) always count. A lower-case "a" counts only with
    evidence that it is a letter: the end of the text, followed by punctuation or a closing
    bracket or quote ("a.", "a,", "(a)", "'a'"; not "a.m."), by a spaced dash ("a - London"),
    or by a word the article never precedes ("a is", "a because").
    """
    if text[start:end] != "a":
        return True
    rest = text[end:]
    if not rest.strip():
        return True
    if rest[0] in _CLOSERS:
        return not (rest[0] == "." and len(rest) > 1 and rest[1].isalpha())
    if re.match(r"\s+[-–—]\s", rest):  # "Answer: a - London"
        return True
    word = re.match(r"\s+([A-Za-z']+)(?![-\w])", rest)  # "a in-depth ..." is the article
    return bool(word) and word.group(1).lower() in _NOT_AFTER_ARTICLE


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_HOMOGLYPHS)
    text = re.sub(r"[*_`]{1,3}", "", text)  # markdown emphasis around letters
    return text.strip()


def _canon(text: str) -> str:
    text = unicodedata.normalize("NFKC", str(text)).casefold()
    text = re.sub(r"[^\w\s%$€£+\-−/.]", " ", text)
    return " ".join(text.strip(" .").split())


def _hedged(text: str, pos: int, letter: str) -> bool:
    """Whether a second, different letter follows position pos ("A or B", "b and (a)")."""
    hedge = _HEDGE.match(text, pos)
    if not hedge or hedge.group(2).upper() == letter:
        return False
    second = hedge.start(2)
    # "B and a lot of ..." is not a hedge: the second "a" must read as a letter.
    return bool(hedge.group(1)) or _is_letter(text, second, second + 1)


def _marked(text: str) -> str | None:
    last = None
    for m in _MARKED.finditer(text):
        if not _is_letter(text, m.start(1), m.end(1)):
            continue  # "the answer is a matter of debate", "I'd go with a different approach"
        letter = m.group(1).upper()
        if _hedged(text, m.end(), letter):
            return UNMAPPED  # "the answer is A or B": two letters, no answer
        last = letter
    # The last explicit statement wins: models that correct themselves end with the answer.
    return last


def _by_option_text(text: str, choices: Sequence[str]) -> str | None:
    said = _canon(text)
    if not said:
        return None
    canon = [_canon(c) for c in choices]
    exact = [i for i, c in enumerate(canon) if c and c == said]
    if len(exact) == 1:
        return LETTERS[exact[0]]
    found = [i for i, c in enumerate(canon)
             if c and re.search(rf"(?<![\w−-]){re.escape(c)}(?![\w])", said)]
    # "7" inside "−7": keep only matches not contained in another match.
    found = [i for i in found if not any(j != i and canon[i] in canon[j] for j in found)]
    if len(found) == 1 and len(canon[found[0]]) >= 2:
        return LETTERS[found[0]]
    return None


def extract_choice(response: str, choices: Sequence[str] | None = None) -> tuple[str, str]:
    """Return (letter or UNMAPPED, rule name) for one free-form answer.

    Rules, strongest first: the answer is a lone letter; an explicit statement ("answer is
    X", in several languages; the last one wins; "X or Y" is no answer); a leading labelled
    option ("B. Paris"); the text of exactly one option; exactly one letter mentioned as
    "(X)" or "option X". Anything else is unmapped.
    """
    if not isinstance(response, str):
        return UNMAPPED, "not_text"
    text = _normalise(response)
    if not text:
        return UNMAPPED, "empty"
    alone = _ALONE.match(text.strip(_PUNCT.replace("(", "").replace(")", "").replace("[", "").replace("]", "")))
    if alone:
        return alone.group(1).upper(), "letter"
    marked = _marked(text)
    if marked == UNMAPPED:
        return UNMAPPED, "ambiguous"
    if marked:
        return marked, "statement"
    leading = _LEADING.match(text)
    if leading:
        letter = (leading.group(1) or leading.group(2)).upper()
        if not _hedged(text, leading.end() - 1, letter) and not _hedged(text, leading.end(), letter):
            return letter, "leading"
        return UNMAPPED, "ambiguous"
    if choices:
        by_text = _by_option_text(text, choices)
        if by_text:
            return by_text, "option_text"
    mentions = {m.group(i).upper() for m in _MENTION.finditer(text) for i in (2, 3)
                if m.group(i) and (m.group(1) or _is_letter(text, m.start(i), m.end(i)))}
    if len(mentions) == 1:
        return mentions.pop(), "mention"
    if len(mentions) > 1:
        return UNMAPPED, "ambiguous"
    return UNMAPPED, "no_answer"


class ChoiceFilter(Filter):
    """lm-eval filter: each response -> `Extracted` letter A-D, or UNMAPPED.

    `judge`: None (default) reads `LM_EVAL_AUDIO_JUDGE` (a chat model name such as
    gpt-4o-mini; unset or 0 = off); "off" forces it off. Its verdicts are cached.
    `judge_protocol`: "ours" (default): the judge sees only the answers the rules leave
    unmapped, with our prompt; "seed": the seed study's cleaning, every non-empty answer sent
    with the seed's exact request (`lm_eval_audio.filters.judge`), the rules deciding only while
    the judge is off.
    """

    def __init__(self, judge: str | None = None, judge_protocol: str = "ours", **kwargs) -> None:
        super().__init__(**kwargs)
        from lm_eval_audio.filters.judge import judge_from_setting

        self.judge = judge_from_setting(judge, protocol=judge_protocol)

    def apply(self, resps: Iterable[Sequence[str]], docs: Sequence[dict]) -> list[list[Extracted]]:
        """Map every response of every document (lm-eval's filter interface)."""
        out, unmapped = [], 0
        seed = self.judge is not None and self.judge.sees_every_answer
        if seed:
            from lm_eval_audio.filters.judge import seed_missing

            resps = [list(r) for r in resps]
            missing = iter(seed_missing([r for doc_resps in resps for r in doc_resps]))
        for doc, doc_resps in zip(docs, resps):
            choices = doc.get("choices") if isinstance(doc, dict) else None
            mapped = []
            for resp in doc_resps:
                if seed:
                    # The seed's cleaning: the judge's reading is the answer, BLANK unmapped; an
                    # empty or missing answer is never sent and stays unmapped.
                    if next(missing):
                        letter, method = UNMAPPED, "empty"
                    else:
                        verdict = self.judge.decide(doc, resp)
                        letter, method = (verdict, "judge") if verdict else (UNMAPPED, "judge_blank")
                else:
                    letter, method = extract_choice(resp, choices)
                if letter == UNMAPPED and self.judge is not None and not self.judge.sees_every_answer \
                        and isinstance(resp, str) and resp.strip():
                    verdict = self.judge.decide(doc, resp)
                    if verdict is not None:
                        letter, method = verdict, "judge"
                unmapped += letter == UNMAPPED
                mapped.append(Extracted(letter, method))
            out.append(mapped)
        if unmapped:
            logger.info("choice_letter: %d of %d answers could not be mapped to A-D", unmapped, len(out))
        return out


class StrictLetterFilter(Filter):
    """lm-eval filter `strict_letter`: the seed's audio-only rule, exactly. An answer counts only
    when it is exactly one of the letters A-D, white space included: the seed's answers went
    through a pandas CSV write and read, which keeps it, so " D" or "C\\n" are unanswered, as
    are prose, "B." and "(B)". `lenient_letter` is the variant that strips first."""

    def apply(self, resps: Iterable[Sequence[str]], docs: Sequence[dict]) -> list[list[Extracted]]:
        """Map every response of every document (lm-eval's filter interface)."""
        return [[Extracted(r, "strict") if isinstance(r, str) and r in LETTERS else Extracted(UNMAPPED, "strict")
                 for r in doc_resps] for doc_resps in resps]


class LenientLetterFilter(Filter):
    """lm-eval filter `lenient_letter`: the answer, stripped of surrounding white space, is
    exactly one of the letters A-D (not the seed's rule: see `strict_letter`)."""

    def apply(self, resps: Iterable[Sequence[str]], docs: Sequence[dict]) -> list[list[Extracted]]:
        """Map every response of every document (lm-eval's filter interface)."""
        return [[Extracted(r.strip(), "lenient") if isinstance(r, str) and r.strip() in LETTERS
                 else Extracted(UNMAPPED, "lenient") for r in doc_resps] for doc_resps in resps]


def exact_match_answered(references: Sequence, predictions: Sequence[str], **kwargs) -> tuple[int, int]:
    """(correct, answered) of one item; aggregated by `answered_accuracy` over the answered items."""
    answered = str(predictions[0]) in LETTERS
    return int(answered and str(predictions[0]) == str(references[0]).strip()), int(answered)


def answered_accuracy(items: Sequence[tuple[int, int]]) -> float:
    """Accuracy over the answered items only (the seed's "Answered"): sum(correct) / sum(answered).

    NaN, with a warning, when no item was answered: there is no accuracy to report.
    """
    correct = sum(c for c, _ in items)
    answered = sum(a for _, a in items)
    if answered == 0:
        logger.warning("exact_match_answered: none of %d items was answered; reporting NaN", len(items))
        return float("nan")
    return correct / answered


def extraction_failure(references: Sequence, predictions: Sequence[str], **kwargs) -> float:
    """1.0 when the filtered answer is not a letter A-D (an extraction failure), else 0.0."""
    return float(str(predictions[0]) not in LETTERS)


def judge_rate(references: Sequence, predictions: Sequence[str], **kwargs) -> float:
    """1.0 when the LLM judge, not a rule, produced the letter, else 0.0."""
    return float(getattr(predictions[0], "method", None) == "judge")
