"""LibriSpeech for ASR tasks: the hub copy (`openslr/librispeech_asr`) or a local folder.

Every loader returns a `datasets.DatasetDict` with one split, `test`, whose rows are
`{"id", "speaker_id", "chapter_id", "text", "audio": {"path", "sha256"}}`; audio stays a file
reference decoded later by `lm_eval_audio.audio.decode_audio`, never by `datasets`/torchcodec.

Sources
-------
- Local folder, the one setting `librispeech_dir` (lm-eval: `--metadata
  '{"librispeech_dir": "/data/LibriSpeech"}'`): the original OpenSLR layout,
  `<dir>/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac` with one
  `<speaker>-<chapter>.trans.txt` per chapter (`<utterance id> <TRANSCRIPT>` per line). `<dir>`
  may also be the folder that holds `LibriSpeech/`.
- Hub (when `librispeech_dir` is not set): `openslr/librispeech_asr`, configs `clean`/`other`,
  splits `validation`/`test`, audio cast to `decode=False`; only the rows kept are written into
  the cache folder.

Order: every source is ordered by utterance id (`speaker-chapter-utterance`) **as a string**,
as torchaudio's `LIBRISPEECH` (the seed study's loader) orders it; so `librispeech_dev_clean_200`
(`limit: 200`) is the seed's first 200 dev-clean utterances from the hub and from a folder
alike, whatever order the hub's rows or the folder walk come in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lm_eval_audio.data._common import file_inside, materialise_column

logger = logging.getLogger(__name__)

HUB_PATH = "openslr/librispeech_asr"
AUDIO_SUFFIXES = (".flac", ".wav")


@dataclass(frozen=True)
class Split:
    """Where one LibriSpeech evaluation split lives in each source."""

    folder: str  # original layout
    hub_config: str
    hub_split: str


SPLITS: dict[str, Split] = {
    "dev-clean": Split("dev-clean", "clean", "validation"),
    "dev-other": Split("dev-other", "other", "validation"),
    "test-clean": Split("test-clean", "clean", "test"),
    "test-other": Split("test-other", "other", "test"),
}


def _split(name: str) -> Split:
    key = name.replace("_", "-").replace(".", "-")
    if key not in SPLITS:
        raise ValueError(f"unknown LibriSpeech split {name!r}; choose from {', '.join(SPLITS)}")
    return SPLITS[key]


def _split_dir(root: Path, split: Split) -> Path:
    for candidate in (root / split.folder, root / "LibriSpeech" / split.folder):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"librispeech_dir {root}: no {split.folder}/ folder (looked for {root / split.folder} and "
        f"{root / 'LibriSpeech' / split.folder}); expected the OpenSLR layout "
        f"<split>/<speaker>/<chapter>/*.flac with <speaker>-<chapter>.trans.txt"
    )


def _find_audio(chapter_dir: Path, utt_id: str, where: str) -> Path | None:
    for suffix in AUDIO_SUFFIXES:
        path = file_inside(chapter_dir, f"{utt_id}{suffix}", where)
        if path.is_file():
            return path
    return None


def read_local_rows(root: str | Path, split: str) -> list[dict]:
    """Utterances of one split of a local LibriSpeech folder, ordered by id as a string."""
    from lm_eval_audio.audio import audio_ref

    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"librispeech_dir {root} is not a folder")
    split_dir = _split_dir(root, _split(split))
    transcripts = sorted(split_dir.glob("*/*/*.trans.txt"))
    if not transcripts:
        raise FileNotFoundError(f"{split_dir}: no <speaker>/<chapter>/*.trans.txt transcript files")
    rows = []
    for trans in transcripts:
        for line_no, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            utt_id, _, text = line.strip().partition(" ")
            where = f"{trans}, line {line_no}"
            if not text.strip():
                raise ValueError(f"{where}: expected '<utterance id> <transcript>', got {line!r}")
            parts = utt_id.split("-")
            if len(parts) != 3:
                raise ValueError(f"{where}: utterance id {utt_id!r} is not <speaker>-<chapter>-<number>")
            audio = _find_audio(trans.parent, utt_id, where)
            if audio is None:
                raise FileNotFoundError(f"{where}: no audio file {utt_id}.flac (or .wav) in {trans.parent}")
            rows.append({"id": utt_id, "speaker_id": parts[0], "chapter_id": parts[1],
                         "text": text.strip(), "audio": audio_ref(audio)})
    rows.sort(key=lambda r: r["id"])
    return rows


def read_hub_rows(split: str, *, limit: int | None = None, path: str = HUB_PATH,
                  revision: str | None = None) -> list[dict]:
    """Utterances of one split from the hub, ordered by id as a string (the first `limit` if given)."""
    import datasets

    s = _split(split)
    try:
        ds = datasets.load_dataset(path, s.hub_config, split=s.hub_split, revision=revision)
    except Exception as e:
        raise RuntimeError(
            f"could not load {path} ({s.hub_config}/{s.hub_split}) from the hub: {e}. Offline, point "
            f"the task at a local copy with --metadata '{{\"librispeech_dir\": \"/path/to/LibriSpeech\"}}'"
        ) from e
    # The whole split is needed to find the first ids; only the id column is read to sort.
    ids = ds["id"]
    order = sorted(range(len(ids)), key=ids.__getitem__)
    ds = ds.select(order[:limit] if limit is not None else order)
    ds = ds.cast_column("audio", datasets.Audio(decode=False))
    keep = ("id", "speaker_id", "chapter_id", "text", "audio")
    # A generator, so each clip's bytes are written to the cache and dropped before the next.
    rows = materialise_column(({k: row[k] for k in keep if k in row} for row in ds), "audio",
                              what=f"librispeech {s.folder}", total=len(ds))
    for row in rows:
        row["speaker_id"], row["chapter_id"] = str(row.get("speaker_id", "")), str(row.get("chapter_id", ""))
    return rows


def load_librispeech(split: str, librispeech_dir: str | None = None, limit: int | None = None, **_ignored: Any):
    """One LibriSpeech split as a DatasetDict with a `test` split (see the module docstring)."""
    import datasets

    if limit is not None and int(limit) < 1:
        raise ValueError(f"limit must be a positive number of utterances, got {limit!r}")
    if librispeech_dir:
        rows = read_local_rows(librispeech_dir, split)
        rows = rows[: int(limit)] if limit is not None else rows
    else:
        rows = read_hub_rows(split, limit=None if limit is None else int(limit))
    if limit is not None and len(rows) < int(limit):
        logger.warning("LibriSpeech %s: asked for the first %d utterances, the source has %d",
                       split, int(limit), len(rows))
    logger.info("LibriSpeech %s: %d utterances from %s", split, len(rows), librispeech_dir or HUB_PATH)
    from lm_eval_audio.data._common import record_protocol

    data = datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
    return record_protocol(data, source=str(librispeech_dir or HUB_PATH), split=split)
