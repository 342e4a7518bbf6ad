"""The seed study's MMLU items and its prompt strings, exactly as its scripts used them.

The seed ("Unpacking Degradation in Multimodal LLMs: The Case of Qwen2-Audio") took the `all`
config of `cais/mmlu`, split `test`, into pandas and kept
`df.sort_values(by=question.str.len() + choices.str.len()).loc[:500]`. `choices` is a list
column, so `.str.len()` is 4 on every row: the order is by question length alone, and `.loc`
is inclusive, so 501 items. Its accuracy notebook scored the first 200 of them.

pandas' default sort is not stable, so which of the 54 questions of exactly 32 characters at
the boundary the seed kept (53 of them) depends on the sort implementation. Ours is the
deterministic reading: shortest question first, ties in `all`-config order (subjects
alphabetically, rows in file order), first 501. At most that one boundary item can differ from
the seed's own file.

The 501 items ship with the package (`seed_mmlu.jsonl`, MMLU is MIT-licensed: see
`seed_mmlu.LICENSE`), in the seed's order, so the seed tasks need no hub, no `--metadata` and
no environment variable; `mmlu_path` still selects them afresh from another MMLU copy.
Rebuild the file from a CSV copy with `python -m lm_eval_audio.data.seed_mmlu --mmlu-path DIR`.

Prompt strings below are the seed's, byte for byte, odd spacing included. `{question}` and the
alternatives are the stored strings, not stripped (some questions end in a newline).
"""

from __future__ import annotations

import argparse
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


def select_seed_items(rows: Sequence[dict], n: int = SEED_SIZE) -> list[dict]:
    """The seed's subset of `rows` (MMLU test items in `all`-config order), in the seed's order.

    Shortest question first; ties keep the order of `rows`. See the module docstring.
    """
    if n > len(rows):
        raise SeedItemsError(f"the seed subset needs {n} items, the source has {len(rows)}")
    order = sorted(range(len(rows)), key=lambda i: (len(rows[i]["question"]), i))[:n]
    return [{k: rows[i][k] for k in FIELDS} for i in order]


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


def seed_items(mmlu_path: str | os.PathLike | None = None) -> list[dict]:
    """The seed's items: embedded, or selected afresh from `mmlu_path` (a CSV folder or hub id)."""
    if not mmlu_path:
        return embedded_items()
    from lm_eval_audio.data.mmlu import load_mmlu

    test = load_mmlu("all", mmlu_path)["test"]
    return select_seed_items(test.to_list())


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


def write_embedded(mmlu_path: str | os.PathLike, out: Path = EMBEDDED) -> Path:
    """Select the seed items from an MMLU copy and write them as the embedded JSONL file."""
    from lm_eval_audio.files import atomic_write_bytes

    items = seed_items(mmlu_path)
    body = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)
    atomic_write_bytes(Path(out), body.encode("utf-8"))
    return Path(out)


def main(argv: list[str] | None = None) -> int:
    """`python -m lm_eval_audio.data.seed_mmlu --mmlu-path DIR`: rebuild the embedded items."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mmlu-path", required=True, help="MMLU CSV folder (test/*_test.csv) or hub id")
    parser.add_argument("--out", default=str(EMBEDDED))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    logger.info("wrote %s", write_embedded(args.mmlu_path, Path(args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
