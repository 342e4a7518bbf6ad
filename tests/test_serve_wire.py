"""How audio goes on the wire to OpenAI-compatible servers (no server needed)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import soundfile as sf

from lm_eval_audio.serve.variants import generation_variants
from lm_eval_audio.serve.wire import clip_refs, input_audio_part, materialise, place_audio


def _kinds(message: dict) -> list[str]:
    return [p["text"] if p["type"] == "text" else "AUDIO" for p in message["content"]]


def test_placeholders_take_clips_in_order_across_turns():
    messages = [{"role": "system", "content": "sys"},
                {"role": "user", "content": "first <audio> then"},
                {"role": "assistant", "content": "A"},
                {"role": "user", "content": "<audio>and<audio>"}]
    out = place_audio(messages, ["k1", "k2", "k3"])
    assert out[0]["content"] == "sys"
    assert _kinds(out[1]) == ["first ", "AUDIO", " then"] and _kinds(out[3]) == ["AUDIO", "and", "AUDIO"]
    assert clip_refs(out) == ["k1", "k2", "k3"]
    assert messages[1]["content"] == "first <audio> then"  # the input is not changed


def test_without_placeholders_clips_open_the_last_user_turn():
    messages = [{"role": "user", "content": "shot"}, {"role": "assistant", "content": "B"},
                {"role": "user", "content": "Transcribe."}]
    out = place_audio(messages, ["k1", "k2"])
    assert out[0]["content"] == "shot" and _kinds(out[2]) == ["AUDIO", "AUDIO", "Transcribe."]


def test_placeholder_count_must_match_and_text_only_drops_them():
    with pytest.raises(ValueError, match=r"doc 3: context has 2 <audio> placeholders for 1 audio clips"):
        place_audio([{"role": "user", "content": "<audio><audio>"}], ["k"], name="doc 3")
    assert place_audio([{"role": "user", "content": "a <audio>b"}], [])[0]["content"] == "a b"


def test_wav_part_keeps_the_decoder_samples_exactly():
    audio = np.random.default_rng(0).uniform(-1, 1, 16000).astype(np.float32)
    part = input_audio_part(audio)
    assert part["type"] == "input_audio" and part["input_audio"]["format"] == "wav"
    data, sr = sf.read(io.BytesIO(base64.b64decode(part["input_audio"]["data"])), dtype="float32")
    assert sr == 16000 and np.array_equal(data, audio)
    sent = materialise(place_audio([{"role": "user", "content": "q"}], ["k"]), {"k": audio})
    assert sent[0]["content"][0] == part


def test_generation_variants_of_our_tasks():
    assert generation_variants(["spoken_mmlu_seed_mc", "spoken_mmlu_anatomy", "timbre_range", "hellaswag"]) == {
        "spoken_mmlu_seed_mc": "spoken_mmlu_seed", "spoken_mmlu_anatomy": "spoken_mmlu_gen_anatomy",
        "timbre_range": "timbre_range_gen"}
