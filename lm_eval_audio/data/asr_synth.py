"""`asr_synth`: an offline stand-in for LibriSpeech, synthesised speech of known text.

Twenty Harvard sentences (lists 1 and 2 of the IEEE 1969 "Recommended Practice for Speech
Quality Measurements", phonetically balanced and in the public domain) spoken by the
configured TTS backend (espeak-ng offline, by default) and cached like every spoken task's
clips. It exists so that the seed study's ASR comparison (Whisper vs the audio LLM, WER on
the same utterances) runs with nothing downloaded. It is not LibriSpeech: one synthetic voice,
no recording conditions, short read sentences; its WERs say nothing about LibriSpeech's.

Rows match the LibriSpeech loader's (`id`, `text` in LibriSpeech's upper case without
punctuation, `audio` reference), so the LibriSpeech task template and metrics apply as they are.
"""

from __future__ import annotations

import re

HARVARD = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
)


def _librispeech_style(text: str) -> str:
    return " ".join(re.sub(r"[^A-Za-z' ]+", " ", text).upper().split())


def load_asr_synth(**run_metadata):
    """The stand-in as a DatasetDict with one `test` split (clips synthesised when missing, with
    the run's TTS settings: the environment and `--metadata` `tts_*` keys)."""
    import datasets

    from lm_eval_audio.audio import audio_ref
    from lm_eval_audio.data._common import record_protocol
    from lm_eval_audio.tts import configure_run

    synth = configure_run(run_metadata)
    rows = []
    for i, sentence in enumerate(HARVARD):
        utt = f"harvard-{i // 10 + 1:02d}-{i % 10 + 1:02d}"
        path = synth.clip(sentence, name=f"asr_synth {utt}", hint="lm-eval-audio synth --task asr_synth", stems=(utt,))
        rows.append({"id": utt, "text": _librispeech_style(sentence), "audio": audio_ref(path)})
    data = datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
    return record_protocol(data, source="asr_synth (Harvard sentences, synthesised)", tts=synth.describe())
