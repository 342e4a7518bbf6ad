"""Timbre range data: the real `ccmusic-database/timbre_range` (hub or local folder) and
`timbre_range_synth`, a generated stand-in with exact labels.

Every loader returns a `datasets.DatasetDict` whose rows are
`{"id", "audio": {"path", "sha256"}, "label": 0|1|2, "label_name": "narrow"|"moderate"|"wide"}`
(plus any extra columns the source has); audio stays a file reference decoded later by
`lm_eval_audio.audio.decode_audio`, never by `datasets`/torchcodec.

Sources
-------
- Hub: `ccmusic-database/timbre_range`, config `range` (44.1 kHz sung notes; train 580,
  validation 73, test). The repository keeps each split as a `save_to_disk` folder
  (`range/<split>/`); only those files are fetched, read with the audio column cast to
  `decode=False`, and the bytes written once to the cache folder and referenced from there.
- Local folder (one setting, `timbre_range_dir`): either a copy of the hub repository (the
  `save_to_disk` folders `range/<split>/` or `<split>/` with `state.json`), or plain audio files
  laid out as `<split>/<label>/*.wav|flac|...` with label folders named `narrow`, `moderate`,
  `wide` (or `0`, `1`, `2`), optionally with a `<split>/metadata.jsonl` (`file_name`, `label`, extra
  columns) as `datasets`' audiofolder uses.

`timbre_range_synth`: what it is and what it is not
---------------------------------------------------
It is a deterministic, generated set of short sung-like phrases (harmonic tones with a
vowel-like formant envelope, vibrato, legato glides, breath noise; 16 kHz mono FLAC, about 1.5-3 s
each) whose label is exact by construction: the span between the phrase's lowest and highest
note is 1-3 semitones (narrow), 6-9 (moderate) or 14-19 (wide), with gaps between the classes.
Phrase centre pitch, note count, note lengths, vowel, vibrato, spectral tilt and loudness vary
independently of the label, so pitch span is the only signal that separates the classes.
Splits: train 450, validation 75, test 150, balanced over the three labels.
It exists so that tests, the README demo and the LoRA module have a learnable, offline task with
known answers.

It is not singing: no words, no real voice, no recording conditions, no singer identity; and
"range" here means the pitch span of one phrase, a proxy for (not a measurement of) a singer's
vocal range as the ccmusic annotators judged it. Scores on it say nothing about scores on the
real `timbre_range`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lm_eval_audio.data._common import build_dir_once, file_inside, materialise_column
from lm_eval_audio.files import cache_root

logger = logging.getLogger(__name__)

LABELS: tuple[str, ...] = ("narrow", "moderate", "wide")
HUB_PATH = "ccmusic-database/timbre_range"
HUB_CONFIG = "range"
SPLITS: tuple[str, ...] = ("train", "validation", "test")
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aiff", ".aif"}
_MARKER = "manifest.json"


# --------------------------------------------------------------------------------------------
# timbre_range_synth


@dataclass(frozen=True)
class SynthConfig:
    """Parameters of the generated stand-in; any change gives a new cache folder."""

    sizes: tuple[tuple[str, int], ...] = (("train", 450), ("validation", 75), ("test", 150))
    sampling_rate: int = 16_000
    notes_per_clip: tuple[int, int] = (5, 7)
    note_seconds: tuple[float, float] = (0.28, 0.45)
    # Inclusive semitone spans per label (index = label); the gaps keep the classes apart.
    spans: tuple[tuple[int, int], ...] = ((1, 3), (6, 9), (14, 19))
    centre_midi: tuple[float, float] = (55.0, 65.0)  # G3..F4: the middle of a sung register
    seed: int = 20_240_611
    version: int = 1

    def key(self) -> str:
        """Short content key of the configuration (names its cache folder)."""
        blob = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


# (F1, F2, F3) in Hz of a few sung vowels: a, e, i, o, u.
_VOWELS = ((800, 1150, 2900), (400, 1600, 2700), (300, 2200, 3000), (450, 800, 2830), (325, 700, 2530))


def _midi_to_hz(m: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((m - 69.0) / 12.0)


def synth_clip(rng: np.random.Generator, label: int, config: SynthConfig) -> tuple[np.ndarray, dict]:
    """One sung-like phrase whose note span falls in `label`'s class; returns (audio, facts)."""
    sr = config.sampling_rate
    lo, hi = config.spans[label]
    span = int(rng.integers(lo, hi + 1))
    n_notes = int(rng.integers(config.notes_per_clip[0], config.notes_per_clip[1] + 1))
    centre = rng.uniform(*config.centre_midi)
    low = int(round(centre - span / 2))
    # The lowest and highest notes are both sung, so the span is exact; the rest fall between.
    notes = np.concatenate([[low, low + span], rng.integers(low, low + span + 1, size=n_notes - 2)])
    rng.shuffle(notes)
    lengths = np.round(rng.uniform(*config.note_seconds, size=n_notes) * sr).astype(int)
    total = int(lengths.sum())

    # Pitch contour: held notes joined by short legato glides, with vibrato on top.
    contour = np.repeat(notes.astype(np.float64), lengths)
    glide = int(0.04 * sr)
    bounds = np.cumsum(lengths)[:-1]
    for b, (a, c) in zip(bounds, zip(notes[:-1], notes[1:])):
        s, e = max(b - glide // 2, 0), min(b + glide // 2, total)
        contour[s:e] = np.linspace(a, c, e - s)
    t = np.arange(total) / sr
    vib_rate, vib_depth = rng.uniform(4.5, 6.5), rng.uniform(0.08, 0.3)
    contour = contour + vib_depth * np.sin(2 * np.pi * vib_rate * t + rng.uniform(0, 2 * np.pi))
    f0 = _midi_to_hz(contour)
    phase = 2 * np.pi * np.cumsum(f0) / sr

    # Harmonics shaped by a spectral tilt and a vowel's formants (Lorentzian resonances).
    formants = np.array(_VOWELS[int(rng.integers(len(_VOWELS)))], dtype=np.float64)
    formants *= rng.uniform(0.92, 1.08, size=3)
    bandwidths = np.array([90.0, 120.0, 180.0])
    tilt = rng.uniform(0.8, 1.5)
    n_harm = max(1, int(4000.0 / f0.max()))
    # Formant gains change slowly, so each harmonic's gain is fixed per note (at the note's own
    # pitch); sin(k*phase) comes from powers of exp(i*phase), a multiply instead of a sine.
    fk = np.arange(1, n_harm + 1)[None, :, None] * _midi_to_hz(notes.astype(np.float64))[:, None, None]
    gains = (0.15 + (1.0 / (1.0 + ((fk - formants) / bandwidths) ** 2)) @ [1.0, 0.6, 0.3])
    gains /= np.arange(1, n_harm + 1)[None, :] ** tilt  # (notes, harmonics)
    z = np.exp(1j * phase).astype(np.complex64)
    zk = z.copy()
    audio = np.zeros(total, dtype=np.float32)
    for k in range(n_harm):
        audio += np.repeat(gains[:, k].astype(np.float32), lengths) * zk.imag
        zk *= z

    # Loudness: soft attack/release per note (articulation) and for the phrase, plus breath noise.
    env = np.ones(total)
    dip = int(0.03 * sr)
    for b in bounds:
        s, e = max(b - dip, 0), min(b + dip, total)
        env[s:e] *= 1.0 - 0.5 * np.hanning(e - s)
    ramp = int(0.05 * sr)
    env[:ramp] *= np.linspace(0, 1, ramp)
    env[-ramp:] *= np.linspace(1, 0, ramp)
    audio = audio * env
    audio /= np.abs(audio).max()
    audio += rng.normal(0.0, 0.004, size=total)
    audio *= rng.uniform(0.3, 0.7) / np.abs(audio).max()
    facts = {"span_semitones": span, "notes_midi": [int(n) for n in notes]}
    return audio.astype(np.float32), facts


def _write_synth(out: Path, config: SynthConfig) -> None:
    import soundfile as sf
    from tqdm.auto import tqdm

    total = sum(n for _, n in config.sizes)
    bar = tqdm(total=total, desc="timbre_range_synth: generating clips", unit="clip")
    counts = {}
    for split_index, (split, n) in enumerate(config.sizes):
        order_rng = np.random.default_rng([config.seed, split_index])
        labels = order_rng.permutation(np.arange(n) % len(LABELS))
        rows = []
        for i, label in enumerate(labels):
            rng = np.random.default_rng([config.seed, split_index, i])
            audio, facts = synth_clip(rng, int(label), config)
            rel = f"{LABELS[label]}/{split}-{i:05d}.flac"
            (out / split / LABELS[label]).mkdir(parents=True, exist_ok=True)
            sf.write(out / split / rel, audio, config.sampling_rate, format="FLAC", subtype="PCM_16")
            rows.append({"file_name": rel, "id": f"synth-{split}-{i:05d}", "label": int(label), **facts})
            bar.update(1)
        with open(out / split / "metadata.jsonl", "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        counts[split] = n
    bar.close()
    manifest = {"dataset": "timbre_range_synth", "config": asdict(config), "counts": counts}
    (out / _MARKER).write_text(json.dumps(manifest, indent=1))


def synth_dir(config: SynthConfig | None = None, root: Path | None = None) -> Path:
    """The folder holding `timbre_range_synth` clips, generated on first use and reused after."""
    config = config or SynthConfig()
    root = Path(root) if root is not None else cache_root() / "timbre_range_synth"
    target = root / f"v{config.version}-{config.key()}"
    if not (target / _MARKER).is_file():
        logger.info("generating timbre_range_synth into %s", target)
    return build_dir_once(target, lambda tmp: _write_synth(tmp, config), complete_marker=_MARKER)


def load_synth(config: SynthConfig | None = None, **_ignored: Any):
    """`timbre_range_synth` as a DatasetDict (train/validation/test), generating it if needed."""
    from lm_eval_audio.data._common import record_protocol

    config = config or SynthConfig()
    return record_protocol(load_local(synth_dir(config)), source=f"timbre_range_synth v{config.version}-{config.key()}")


# --------------------------------------------------------------------------------------------
# real data: local folder or hub


def _label_index(value: Any, where: str) -> int:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 <= int(value) < len(LABELS):
        return int(value)
    text = str(value).strip().lower()
    if text in LABELS:
        return LABELS.index(text)
    if text.isdigit() and int(text) < len(LABELS):
        return int(text)
    raise ValueError(f"{where}: unknown timbre-range label {value!r}; expected one of {LABELS} or 0-2")


def _rows_from_audio_folder(split_dir: Path) -> list[dict]:
    from lm_eval_audio.audio import audio_ref

    meta = split_dir / "metadata.jsonl"
    rows = []
    if meta.is_file():
        with open(meta) as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                rec = json.loads(line)
                where = f"{meta}, line {line_no}"
                if "file_name" not in rec or "label" not in rec:
                    raise ValueError(f"{where}: needs 'file_name' and 'label', has {sorted(rec)}")
                label = _label_index(rec.pop("label"), where)
                path = file_inside(split_dir, str(rec.pop("file_name")), where)
                rows.append({"id": rec.pop("id", path.stem), "audio": audio_ref(path), "label": label,
                             "label_name": LABELS[label], **rec})
        return rows
    for label_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        label = _label_index(label_dir.name, f"label folder {label_dir}")
        for path in sorted(p for p in label_dir.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES):
            rows.append({"id": path.stem, "audio": audio_ref(path), "label": label, "label_name": LABELS[label]})
    return rows


def _hf_rows(ds, what: str) -> list[dict]:
    """Rows of a `datasets` timbre_range split (hub or save_to_disk copy) with audio refs."""
    from datasets import Audio

    ds = ds.remove_columns([c for c in ("mel",) if c in ds.column_names])  # an image we never use
    ds = ds.cast_column("audio", Audio(decode=False))
    names = ds.features["label"].names if hasattr(ds.features["label"], "names") else None
    rows = []
    for i, row in enumerate(materialise_column(ds, "audio", what=what, total=len(ds))):
        raw = names[row["label"]] if names else row["label"]
        label = _label_index(raw, f"{what}, row {i}")
        rows.append({**row, "id": row.get("id") or f"{what}-{i:05d}", "label": label, "label_name": LABELS[label]})
    return rows


def _to_dataset_dict(split_rows: dict[str, list[dict]], where: str):
    import datasets

    if "test" not in split_rows or not split_rows["test"]:
        raise ValueError(
            f"{where}: no 'test' split found. Expected <dir>/test/<label>/*.wav (labels "
            f"{', '.join(LABELS)} or 0-2), <dir>/test/metadata.jsonl, or a hub copy with range/test/"
        )
    return datasets.DatasetDict({s: datasets.Dataset.from_list(r) for s, r in split_rows.items() if r})


def load_local(path: str | Path, **_ignored: Any):
    """Timbre-range data from a local folder (see the module docstring for the layouts)."""
    import datasets

    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"timbre_range_dir {root} is not a folder")
    base = root / HUB_CONFIG if (root / HUB_CONFIG).is_dir() else root
    split_rows = {}
    for split in SPLITS:
        d = base / split
        if not d.is_dir():
            continue
        if (d / "state.json").is_file():  # a `save_to_disk` split, as the hub repository stores it
            split_rows[split] = _hf_rows(datasets.load_from_disk(str(d)), f"timbre_range {split}")
        else:
            split_rows[split] = _rows_from_audio_folder(d)
    return _to_dataset_dict(split_rows, str(root))


def load_hub(path: str = HUB_PATH, name: str = HUB_CONFIG, revision: str | None = None):
    """Timbre-range data from the hub: the repository stores each split of a config as a
    `save_to_disk` folder (`range/train/`, ...), so only that config's files are fetched and then
    read exactly as a local copy is (audio never decoded by `datasets`, cached as files)."""
    from huggingface_hub import snapshot_download

    try:
        local = snapshot_download(path, repo_type="dataset", revision=revision, allow_patterns=[f"{name}/**"])
    except Exception as e:
        raise RuntimeError(
            f"could not fetch {path} ({name}) from the hub: {e}. Offline, point the task at a local "
            f"copy with --metadata '{{\"timbre_range_dir\": \"/path/to/timbre_range\"}}'"
        ) from e
    return load_local(local)


def load_timbre_range(timbre_range_dir: str | None = None, **_ignored: Any):
    """The real timbre_range: the local folder when `timbre_range_dir` is set, else the hub."""
    from lm_eval_audio.data._common import record_protocol

    data = load_local(timbre_range_dir) if timbre_range_dir else load_hub()
    return record_protocol(data, source=str(timbre_range_dir or HUB_PATH))


SOURCES = ("hub", "synth")


def load_seed_split(split: str = "train", limit: int | None = None, timbre_range_dir: str | None = None,
                    timbre_range_source: str | None = None, **_ignored: Any):
    """The seed study's timbre items: the first `limit` of `split`, in the source's order.

    Returns a DatasetDict whose `test` split holds those items (what the task scores) and whose
    `train` split holds the first `limit` train items (what the seed fine-tuned on), so that
    `finetune` trains on exactly the items the seed's adapter saw. The source is the real
    dataset (`timbre_range_dir`, else the hub) unless `timbre_range_source` is "synth": the
    generated stand-in, which has the real dataset's train/validation/test splits.
    """
    import datasets

    source = timbre_range_source or "hub"
    if source not in SOURCES:
        raise ValueError(f"timbre_range_source must be one of {SOURCES}, got {source!r}")
    data = load_synth() if source == "synth" else load_timbre_range(timbre_range_dir)
    for name in ("train", split):
        if name not in data:
            raise ValueError(f"timbre_range ({timbre_range_dir or source}): no {name!r} split")

    def first(name: str):
        ds = data[name]
        return ds.select(range(min(int(limit), len(ds)))) if limit is not None else ds

    from lm_eval_audio.data._common import record_protocol, recorded_protocol

    facts = dict(recorded_protocol(data), split=split)
    return record_protocol(datasets.DatasetDict({"train": first("train"), "test": first(split)}), **facts)
