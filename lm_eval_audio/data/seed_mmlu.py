"""The seed study's MMLU items and its prompt strings, exactly as its scripts used them.

The seed ("Unpacking Degradation in Multimodal LLMs: The Case of Qwen2-Audio") took the `all`
config of `cais/mmlu`, split `test`, into pandas and kept
`df.sort_values(by=question.str.len() + choices.str.len()).loc[:500]`. `choices` is a list
column, so `.str.len()` is 4 on every row: the order is by question length alone, and `.loc`
is inclusive, so 501 items. Its accuracy notebook scored the first 200 of them.

How the order was established. pandas' default sort is numpy's quicksort, which is not stable:
on x86-64 numpy hands an int64 argsort to x86-simd-sort's vectorised quicksort, whose order of
equal keys follows the vector width (AVX-512, AVX2 and plain C give three different orders).
Ties are long here (33 questions of 25 characters fill positions 197-229; 53 of the 54 of 32
characters close the set), so the tie order decides both the 501 items and the analysed 200.
The seed's committed clips (`question_0..4`) speak nutrition/49, high_school_macroeconomics/38,
nutrition/236, nutrition/173, high_school_macroeconomics/239: numpy's AVX-512 order, and no
other. `tools/x86_simd_argsort.py` replays that sort step by step on any machine (checked
against numpy's own argsort where it runs natively) and `tools/seed_mmlu_order.py` writes its
501 items here. A stable sort (ties in `all`-config order) would differ in 1 of the 501 items
(anatomy/104 instead of world_religions/155), in 2 of the first 200, and put only 28 of the
501 at the seed's position.

The 501 items ship with the package (`seed_mmlu.jsonl`, MMLU is MIT-licensed: see
`seed_mmlu.LICENSE`), in the seed's order, so the seed tasks need no hub, no `--metadata` and
no environment variable, and the order never depends on the machine that evaluates.
`mmlu_path` reads the same items, in the same order, from another MMLU copy.

Prompt strings below are the seed's, byte for byte, odd spacing included. `{question}` and the
alternatives are the stored strings, not stripped (some questions end in a newline).
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

SEED_SIZE = 501  # `.loc[:500]` is inclusive
ANALYSED = 200  # the seed's accuracy notebook scored `mmlu[0:200]`
EMBEDDED = Path(__file__).with_name("seed_mmlu.jsonl")
FIELDS = ("mmlu_id", "subject", "question", "choices", "answer")

# Spoken MMLU: what one clip says (read by gpt-4o-mini-tts, voice alloy, in the seed).
SPOKEN_TEMPLATE = (
    "Answer the following question only with the letter of the correct alternative. Your answer "
    "should be only A, B, C or D. Question: {question}. Alternative A. {A}. Alternative B. {B}. "
    "Alternative C. {C}. Alternative D. {D}. Answer with the right alternative number:"
)
# Text MMLU (`formatted_question_MMLU`): the user message on Qwen2-Audio, and the backbone's
# after its instruction.
ITEM_TEMPLATE = "Question: {question}\nA. {A}\nB. {B}\nC. {C}\nD. {D}\nAnswer:"
# The backbone's instruction (Qwen-7B-Chat). The system messages are the tasks' `description`
# (tasks/mmlu_seed/*.yaml), where lm-eval reads them.
BACKBONE_PREFIX = (
    "Return ONLY the letter of the correct answer (A, B, C, or D). Your answer should be one "
    "character long: A, B, C, or D \n"
)
# The seed's gpt-4o-mini answer cleaning (system "You are a helpful assistant.").
JUDGE_SYSTEM = "You are a helpful assistant."
JUDGE_TEMPLATE = (
    "I will give the alternatives I gave to another LLM and its answer. Your task is to tell me "
    "which alternative the model is referring to, if it is A, B, C or D. Your answer should only "
    "be a letter or output BLANK if you cannot identify the alternative the other LLM was "
    "referring to\nalternatives: {alternatives}\nmodel answer: {response}"
)


class SeedItemsError(ValueError):
    """The embedded item file or a source for the seed subset is unusable; names what and where."""


def _alternatives(doc: dict) -> dict[str, str]:
    choices = doc["choices"]
    if len(choices) != 4:
        raise SeedItemsError(f"MMLU item {doc.get('mmlu_id', '?')}: expected 4 choices, got {len(choices)}")
    return dict(zip("ABCD", choices))


def spoken_text(doc: dict) -> str:
    """The exact text the seed's clip of this item speaks."""
    return SPOKEN_TEMPLATE.format(question=doc["question"], **_alternatives(doc))


def item_text(doc: dict) -> str:
    """The seed's `formatted_question_MMLU`: question, lettered alternatives, `Answer:`."""
    return ITEM_TEMPLATE.format(question=doc["question"], **_alternatives(doc))


def backbone_text(doc: dict) -> str:
    """The seed's user message to the text backbone: its instruction, then the item text."""
    return BACKBONE_PREFIX + item_text(doc)


def judge_prompt(doc: dict, response: str) -> str:
    """The seed's gpt-4o-mini cleaning prompt for one answer (alternatives = item text from `A. `)."""
    text = item_text(doc)
    return JUDGE_TEMPLATE.format(alternatives=text[text.index("\nA. ") + 1:], response=response)


def select_seed_items(rows: Sequence[dict], source: str = "the MMLU source") -> list[dict]:
    """The seed's items read from `rows` (MMLU test items with `mmlu_id`), in the seed's order.

    The order is the shipped one (see the module docstring): it cannot be recomputed portably
    with pandas, whose tie order depends on the CPU.
    """
    by_id = {row["mmlu_id"]: row for row in rows}
    ids = [item["mmlu_id"] for item in embedded_items()]
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise SeedItemsError(f"{source} lacks {len(missing)} of the seed's items, e.g. {missing[:3]}")
    return [{k: by_id[i][k] for k in FIELDS} for i in ids]


def embedded_items() -> list[dict]:
    """The 501 seed items shipped with the package, in the seed's order."""
    try:
        lines = EMBEDDED.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise SeedItemsError(f"the embedded seed items {EMBEDDED} cannot be read: {e}") from e
    items = []
    for lineno, line in enumerate(lines, 1):
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise SeedItemsError(f"{EMBEDDED}:{lineno}: not JSON: {e}") from e
        missing = [k for k in FIELDS if k not in item]
        if missing:
            raise SeedItemsError(f"{EMBEDDED}:{lineno}: missing {missing}")
        items.append(item)
    if len(items) != SEED_SIZE:
        raise SeedItemsError(f"{EMBEDDED} holds {len(items)} items, expected {SEED_SIZE}")
    return items


@functools.lru_cache(maxsize=1)
def _positions() -> dict[str, int]:
    return {item["mmlu_id"]: i for i, item in enumerate(embedded_items())}


def seed_position(mmlu_id: str) -> int:
    """The item's position in the seed's order (its clips were `question_{position}`)."""
    try:
        return _positions()[mmlu_id]
    except KeyError:
        raise SeedItemsError(f"{mmlu_id!r} is not one of the seed's {SEED_SIZE} MMLU items") from None


def seed_items(mmlu_path: str | os.PathLike | None = None) -> list[dict]:
    """The seed's items: embedded, or selected afresh from `mmlu_path` (a CSV folder or hub id)."""
    if not mmlu_path:
        return embedded_items()
    from lm_eval_audio.data.mmlu import load_mmlu

    test = load_mmlu("all", mmlu_path)["test"]
    return select_seed_items(test.to_list(), str(mmlu_path))


def load_for_task(spoken: bool = False, mmlu_path: str | None = None, **run_metadata):
    """The dataset of a seed MMLU task (lm-eval's `custom_dataset` hook): one `test` split.

    lm-eval calls it with the YAML's `dataset_kwargs` plus the run's metadata (data locations,
    `tts_*` speech settings, model arguments). Spoken tasks' documents also carry
    `speech_text`, the exact text of their clip, so that `--log_samples` shows what the model
    heard. Source and TTS settings are recorded for the results file.
    """
    import datasets

    from lm_eval_audio.data._common import record_protocol
    from lm_eval_audio.data.mmlu import task_protocol

    items = seed_items(mmlu_path)
    if spoken:
        items = [dict(item, speech_text=spoken_text(item)) for item in items]
    source = str(mmlu_path) if mmlu_path else f"embedded seed items ({EMBEDDED.name})"
    logger.info("seed MMLU: %d items from %s", len(items), source)
    data = datasets.DatasetDict({"test": datasets.Dataset.from_list(items)})
    return record_protocol(data, **task_protocol(source, spoken, run_metadata))
