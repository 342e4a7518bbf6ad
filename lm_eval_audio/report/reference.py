"""Published figures shown beside our measurements, always labelled as published.

They were not produced by this harness: different prompts, subsets, normalisers or shot counts
make them context, not a target. `tasks` lists our task names that measure the same benchmark
split, so a figure can sit in that column of the comparison table. WER figures are stored as
fractions (published as percentages) so they share a column's unit with our WER metric.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PublishedFigure:
    """One published number and where it comes from."""

    model: str
    benchmark: str
    metric: str
    value: float
    published_as: str  # the figure as its source prints it
    source: str
    tasks: tuple[str, ...] = ()  # our tasks that measure the same benchmark split
    note: str = ""


_QWEN2_AUDIO_REPORT = "Qwen2-Audio Technical Report (Chu et al., 2024, arXiv:2407.10759)"
_QWEN2_AUDIO_HF = "Qwen2-Audio README (github.com/QwenLM/Qwen2-Audio), evaluated after conversion to the transformers format"
# Our dev-clean columns (the seed's first 200 utterances) show the full-split figure as context.
_DEV_CLEAN = ("librispeech_dev_clean", "librispeech_dev_clean_chat", "librispeech_dev_clean_200",
              "librispeech_dev_clean_200_chat")
_OPEN_ASR = "Open ASR Leaderboard (github.com/huggingface/open_asr_leaderboard)"

PUBLISHED: tuple[PublishedFigure, ...] = (
    PublishedFigure("Qwen2-Audio-7B", "LibriSpeech dev-clean", "wer", 0.013, "1.3%", _QWEN2_AUDIO_REPORT,
                    _DEV_CLEAN, note="all 2,703 dev-clean utterances"),
    PublishedFigure("Qwen2-Audio-7B", "LibriSpeech dev-other", "wer", 0.034, "3.4%", _QWEN2_AUDIO_REPORT,
                    ("librispeech_dev_other",)),
    PublishedFigure("Qwen2-Audio-7B", "LibriSpeech test-clean", "wer", 0.016, "1.6%", _QWEN2_AUDIO_REPORT,
                    ("librispeech_test_clean",)),
    PublishedFigure("Qwen2-Audio-7B", "LibriSpeech test-other", "wer", 0.036, "3.6%", _QWEN2_AUDIO_REPORT,
                    ("librispeech_test_other",)),
    PublishedFigure("Qwen2-Audio-7B (HF format)", "LibriSpeech dev-clean", "wer", 0.017, "1.7%", _QWEN2_AUDIO_HF,
                    _DEV_CLEAN, note="all 2,703 dev-clean utterances"),
    PublishedFigure("Qwen2-Audio-7B (HF format)", "LibriSpeech dev-other", "wer", 0.036, "3.6%", _QWEN2_AUDIO_HF,
                    ("librispeech_dev_other",)),
    PublishedFigure("Qwen2-Audio-7B (HF format)", "LibriSpeech test-clean", "wer", 0.017, "1.7%", _QWEN2_AUDIO_HF,
                    ("librispeech_test_clean",)),
    PublishedFigure("Qwen2-Audio-7B (HF format)", "LibriSpeech test-other", "wer", 0.040, "4.0%", _QWEN2_AUDIO_HF,
                    ("librispeech_test_other",)),
    PublishedFigure("Whisper large-v3", "LibriSpeech test-clean", "wer", 0.0201, "2.01%", _OPEN_ASR,
                    ("librispeech_test_clean",)),
    PublishedFigure("Whisper large-v3", "LibriSpeech test-other", "wer", 0.0391, "3.91%", _OPEN_ASR,
                    ("librispeech_test_other",)),
    PublishedFigure("Qwen-7B (base)", "MMLU, 5-shot, all 14,042 questions", "acc", 0.582, "58.2",
                    "Qwen Technical Report (Bai et al., 2023, arXiv:2309.16609)", ("mmlu",),
                    note="base model, 5-shot; the seed study ran Qwen-7B-Chat zero-shot on its 501 shortest questions"),
    PublishedFigure("Qwen2-Audio-7B-Instruct", "VoiceBench mmsu (3,074 spoken MMLU-Pro questions)", "acc",
                    0.3572, "35.72", "VoiceBench (Chen et al., 2024, arXiv:2410.17196), leaderboard",
                    note="MMLU-Pro questions read by Google TTS: related to, not the same as, spoken MMLU"),
)
