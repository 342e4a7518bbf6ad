"""Build `tests/data/` (the small real files the test suite reads) from a full data folder.

    python tools/make_test_data.py --source ../shared/data [--out tests/data]

What it writes (a fresh clone runs every test from these; see tests/data/README.md):
- `mmlu/test/*_test.csv`: the first rows of every subject (ids `subject/N` count rows from the
  top, so a prefix keeps them), `anatomy` whole; `mmlu/dev/*_dev.csv` whole (5 rows a subject).
- `mmlu_test_index.tsv.gz`: one line per row of the full MMLU test split in `all` order:
  `mmlu_id`, question length in characters, answer letter and a digest of the row's question,
  choices and answer. The seed-order tests sort these lengths exactly as the seed sorted the
  full split, and compare the shipped items' digests with the copy's, without its 6 MB of CSVs.
- `speech/ljspeech/`: the LJ Speech clips and their transcripts, copied as they are.
- `SEED_PROTOCOL.md`: the project's notes on what the seed study's scripts did (its strings).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import json
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PREFIX_ROWS = 5  # rows kept per subject: enough for every test's `--limit` and twin pairing
WHOLE_SUBJECTS = ("anatomy",)  # tests count its 135 rows and load it whole
INDEX_NAME = "mmlu_test_index.tsv.gz"


def row_digest(question: str, choices: list[str], answer: int) -> str:
    """A short digest of one MMLU item's content (stored strings, not stripped)."""
    blob = json.dumps([question, list(choices), int(answer)], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def write_index(mmlu_dir: Path, out: Path) -> int:
    """The full test split's index (see the module docstring); returns its row count."""
    from lm_eval_audio.data.mmlu import LETTERS, load_mmlu

    rows = load_mmlu("all", mmlu_dir)["test"].to_list()
    # mtime=0: the same input gives the same bytes, so a rerun leaves git with nothing to commit.
    with open(out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as fh:
        for r in rows:
            line = "\t".join([r["mmlu_id"], str(len(r["question"])), LETTERS[r["answer"]],
                              row_digest(r["question"], r["choices"], r["answer"])])
            fh.write((line + "\n").encode("utf-8"))
    return len(rows)


def copy_mmlu_prefix(src: Path, dst: Path) -> None:
    """Every subject's first rows (whole for `WHOLE_SUBJECTS`), and the dev split whole."""
    for split in ("test", "dev"):
        (dst / split).mkdir(parents=True, exist_ok=True)
        for path in sorted((src / split).glob(f"*_{split}.csv")):
            subject = path.name.removesuffix(f"_{split}.csv")
            if split == "dev" or subject in WHOLE_SUBJECTS:
                shutil.copy2(path, dst / split / path.name)
                continue
            with open(path, newline="", encoding="utf-8") as fh:
                rows = list(csv.reader(fh))[:PREFIX_ROWS]
            with open(dst / split / path.name, "w", newline="", encoding="utf-8") as fh:
                csv.writer(fh, lineterminator="\n").writerows(rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", type=Path, default=REPO.parent / "shared" / "data",
                   help="the full data folder (mmlu/, speech/ljspeech/)")
    p.add_argument("--out", type=Path, default=REPO / "tests" / "data")
    a = p.parse_args(argv)
    copy_mmlu_prefix(a.source / "mmlu", a.out / "mmlu")
    n = write_index(a.source / "mmlu", a.out / INDEX_NAME)
    lj_src, lj_dst = a.source / "speech" / "ljspeech", a.out / "speech" / "ljspeech"
    (lj_dst / "wavs").mkdir(parents=True, exist_ok=True)
    shutil.copy2(lj_src / "transcripts.psv", lj_dst / "transcripts.psv")
    for clip in sorted((lj_src / "wavs").glob("*.flac")):
        shutil.copy2(clip, lj_dst / "wavs" / clip.name)
    protocol = a.source.parent / "SEED_PROTOCOL.md"  # the team's notes on the seed's scripts
    if protocol.is_file():
        shutil.copy2(protocol, a.out / protocol.name)
    print(f"wrote {a.out}: MMLU prefix copy, index of {n} test rows, LJ Speech clips")


if __name__ == "__main__":
    main()
