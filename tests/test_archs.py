"""Which architectures exist (asked of transformers), their tiny offline checkpoints, the refusals
that follow what imports, and what each architecture's processor and model measure here."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from arch_cases import RUNNABLE, UNAVAILABLE

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import transformers  # noqa: E402

from lm_eval_audio.arch import facts as facts_module  # noqa: E402
from lm_eval_audio.arch.coverage import audio_text_model_types, coverage  # noqa: E402
from lm_eval_audio.arch.facts import ARCHS, REFUSED, facts  # noqa: E402
from lm_eval_audio.tiny.archs import BUILDERS, ArchUnavailable, build_arch, omni_model_parts  # noqa: E402

SR = 16_000


def _clip(seconds: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(SR * seconds)) * 0.1).astype(np.float32)


def _hashes(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


# -- coverage: transformers' own list ------------------------------------------------------------
@pytest.fixture(scope="module")
def derived() -> dict[str, tuple[str, ...]]:
    return audio_text_model_types()


def test_every_audio_text_model_type_is_supported_or_refused_by_name(derived):
    unknown = [c.model_type for c in coverage() if c.status == "unknown"]
    assert unknown == [], f"new audio-in, text-out model types in transformers: add them to ARCHS or REFUSED: {unknown}"
    assert not set(ARCHS) & set(REFUSED)
    # no stale names: every entry is a model type this transformers carries
    assert set(ARCHS) | set(REFUSED) <= set(derived), sorted((set(ARCHS) | set(REFUSED)) - set(derived))
    assert {"qwen2_audio", "voxtral", "gemma3n", "whisper"} <= set(derived)
    assert "Qwen2_5OmniForConditionalGeneration" in derived["qwen2_5_omni"]


def test_the_derivation_is_transformers_own(derived, monkeypatch):
    """A model type transformers adds (an audio processor, a text-generating model) shows up as unknown."""
    from transformers.models.auto import modeling_auto, processing_auto

    monkeypatch.setitem(processing_auto.PROCESSOR_MAPPING_NAMES, "brand_new_audio_lm", "Qwen2AudioProcessor")
    monkeypatch.setitem(modeling_auto.MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES, "brand_new_audio_lm", "BrandNewForLM")
    rows = {c.model_type: c for c in coverage()}
    assert rows["brand_new_audio_lm"].status == "unknown"
    # text-only and image-only processors do not count; nor do audio models that generate no text
    assert "llava" not in derived and "wav2vec2" not in derived and "clap" not in derived


def test_archs_command_prints_every_model_type(derived, capsys):
    from lm_eval_audio.cli import main

    assert main(["archs"]) == 0
    out = capsys.readouterr().out
    lines = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ") and "---" not in line}
    assert set(lines) - {"model_type"} == set(derived)
    for arch in RUNNABLE:
        assert "| supported | yes |" in lines[arch]
    assert "tokenizer's" in lines["phi4_multimodal"] and "on .thinker" in lines["qwen2_5_omni"]
    assert REFUSED["whisper"] in lines["whisper"]
    assert f"{len(derived)} model types: {len(RUNNABLE)} supported" in out


# -- building ----------------------------------------------------------------------------------
def test_every_supported_architecture_has_a_builder():
    assert set(BUILDERS) == set(ARCHS)
    with pytest.raises(KeyError, match="qwen2_audio"):
        facts("wav2vec2")
    with pytest.raises(ValueError, match="small"):
        build_arch("/nonexistent", "audioflamingo3", size="small")


@pytest.mark.parametrize("arch", RUNNABLE)
def test_build_is_deterministic_and_small(arch, arch_checkpoint, tmp_path):
    first = arch_checkpoint(arch)
    second = build_arch(tmp_path / arch, arch)
    assert _hashes(first) == _hashes(second)
    size = sum(p.stat().st_size for p in first.iterdir())
    assert size < 20 * 2**20, f"{arch}: {size} bytes"
    assert transformers.AutoConfig.from_pretrained(first).model_type == arch


def _missing(module: str):
    real = facts_module.import_problem
    return lambda m: "not installed" if m == module else real(m)


@pytest.mark.parametrize("arch", [a for a in ARCHS if facts(a).requires])
def test_a_missing_package_is_refused_by_name(arch, tmp_path, monkeypatch):
    """What imports decides: with the package gone, the builder and hf-audio both refuse, naming it."""
    from lm_eval_audio.cli import main
    from lm_eval_audio.models.hf_audio import HFAudioLM

    module = facts(arch).requires[0]
    monkeypatch.setattr(facts_module, "import_problem", _missing(module))
    with pytest.raises(ArchUnavailable, match=rf"^{arch}: needs '{module}', which is not installed \("):
        build_arch(tmp_path / arch, arch)
    assert not (tmp_path / arch).exists()  # nothing half-written
    with pytest.raises(SystemExit, match=rf"make-tiny-model: {arch}: needs '{module}'"):
        main(["make-tiny-model", str(tmp_path / "x"), "--arch", arch])
    (tmp_path / "config.json").write_text(json.dumps({"model_type": arch}))
    with pytest.raises(ValueError, match=rf"hf-audio: architecture '{arch}' cannot be evaluated here: needs '{module}'"):
        HFAudioLM(pretrained=str(tmp_path))


def test_every_architecture_builds_here_or_is_refused_with_what_it_needs(arch_checkpoint, tmp_path):
    """The environment decides, architecture by architecture: what imports here builds a checkpoint
    that loads; what does not is refused by name before anything is written."""
    for arch in ARCHS:
        if arch in UNAVAILABLE:
            with pytest.raises(ArchUnavailable, match=rf"^{arch}: needs "):
                build_arch(tmp_path / arch, arch)
            assert not (tmp_path / arch).exists()
        else:
            config = transformers.AutoConfig.from_pretrained(arch_checkpoint(arch))
            assert config.model_type == arch


@pytest.mark.parametrize("arch", ["whisper", "musicgen", "kyutai_speech_to_text"])
def test_refused_architecture_is_named_with_its_reason(arch, tmp_path):
    from lm_eval_audio.models.hf_audio import HFAudioLM

    (tmp_path / "config.json").write_text(json.dumps({"model_type": arch}))
    with pytest.raises(ValueError, match=rf"hf-audio: architecture '{arch}' cannot be evaluated here: "):
        HFAudioLM(pretrained=str(tmp_path))


# -- what the processors and models measure ------------------------------------------------------
@pytest.fixture(scope="module")
def lms(arch_checkpoint):
    from lm_eval_audio.models.hf_audio import HFAudioLM

    loaded = {}

    def get(arch):
        if arch not in loaded:
            loaded[arch] = HFAudioLM(pretrained=str(arch_checkpoint(arch)))
        return loaded[arch]

    return get


# Audio positions per clip at 3 s and 10 s, and what the prompt carries for one clip outside a chat.
TOKENS = {
    "qwen2_audio": (75, 250),  # ((L-1)//2+1-2)//2+1 for L = 100 mel frames per second
    "audioflamingo3": (75, 250),
    "qwen2_5_omni": (75, 250),
    "qwen3_omni_moe": (39, 130),  # 13 per 100-frame chunk plus the remainder's
    "granite_speech": (30, 102),  # ceil(frames / 2 / window 15) * (15 // downsample 5)
    "phi4_multimodal": (38, 125),  # mel frames / 8 (audio_compression_rate)
    "gemma3n": (188, 188),  # fixed: audio_seq_length, the encoder's output padded to it
    "voxtral": (375, 375),  # 375 per started 30 s chunk (frame rate 12.5)
    "glmasr": (37, 125),  # per 30 s window ((L-1)//2+1-4)//4+1, summed
    "musicflamingo": (75, 250),  # as Audio Flamingo 3 (plus the <|sound_bos|>/<|sound_eos|> it writes)
    "qwen3_asr": (39, 130),  # as Qwen3-Omni: 13 per 100-frame chunk plus the remainder's
    "gemma4": (75, 250),  # mel frames through two stride-2 convolutions (plus its <|audio>/<audio|>)
}
BASE_CLIP = {
    "qwen2_audio": "<|audio_bos|><|AUDIO|><|audio_eos|>",
    "audioflamingo3": "<sound>",
    "qwen2_5_omni": "<|audio_bos|><|AUDIO|><|audio_eos|>",
    "qwen3_omni_moe": "<|audio_start|><|audio_pad|><|audio_end|>",
    "granite_speech": "<|audio|>",
    "phi4_multimodal": "<|audio|>",
    "gemma3n": "\n\n<start_of_audio><audio_soft_token><end_of_audio>\n\n",  # the processor's own expansion
    "voxtral": "\u2063id:25\u2063\u2063id:24\u2063",  # [BEGIN_AUDIO][AUDIO] as control-id markers
    "glmasr": "<|pad|>",
    "musicflamingo": "<|sound_bos|><sound><|sound_eos|>",  # the processor's own expansion
    "qwen3_asr": "<|audio_start|><|audio_pad|><|audio_end|>",
    "gemma4": "<|audio><|audio|><audio|>",  # the processor's own expansion
}


@pytest.mark.parametrize("arch", RUNNABLE)
def test_placeholder_and_positions_per_clip(arch, lms):
    lm = lms(arch)
    assert lm.fmt.base_clip == BASE_CLIP[arch]
    arrays = {"a": _clip(3), "b": _clip(10, 1)}
    assert lm.audio.encode(["a", "b"], arrays).counts == list(TOKENS[arch])


def test_phi4_processor_loses_its_chat_template_and_the_tokenizers_is_used(arch_checkpoint, lms):
    if "phi4_multimodal" not in RUNNABLE:
        pytest.skip("phi4_multimodal does not run here")
    assert facts("phi4_multimodal").chat_template_from == "tokenizer"
    processor = transformers.AutoProcessor.from_pretrained(arch_checkpoint("phi4_multimodal"))
    assert processor.chat_template is None and processor.tokenizer.chat_template
    lm = lms("phi4_multimodal")
    assert lm.processor.chat_template == processor.tokenizer.chat_template
    assert lm.apply_chat_template([{"role": "user", "content": "Hi"}]).startswith("<|user|>")


@pytest.mark.parametrize("arch", [a for a in ("qwen2_5_omni", "qwen3_omni_moe") if a in RUNNABLE])
def test_omni_runs_its_thinker(arch, arch_checkpoint, lms):
    f = facts(arch)
    model = transformers.AutoModelForMultimodalLM.from_pretrained(arch_checkpoint(arch))
    with pytest.raises(TypeError):  # the Omni model has no forward of its own
        model(input_ids=torch.tensor([[1, 2]]))
    lm = lms(arch)
    assert lm.core is lm.loaded.get_submodule(f.forward_module) and lm.kv_reuse is False
    # text-only requests run HFLM's own path, on the thinker too
    (score,) = lm.loglikelihood([_text_request("Answer:", " A")], disable_tqdm=True)
    assert np.isfinite(score[0])


def _text_request(context, continuation):
    from lm_eval.api.instance import Instance

    return Instance("loglikelihood", {}, (context, continuation), idx=0, metadata=("t", 0, 1))


def test_omni_continuation_on_the_cache_needs_3d_positions():
    """Why the Omni thinkers run whole rows (facts: kv_reuse False): with the full-length mask the
    continuation's mrope positions come out full-length and the forward fails."""
    tokenizer, model = omni_model_parts()
    thinker = model.thinker
    extractor = transformers.WhisperFeatureExtractor(feature_size=128)
    feats = extractor([_clip(3)], sampling_rate=SR, return_attention_mask=True, padding="max_length", return_tensors="pt")
    prompt = "<|im_start|>user\n<|audio_bos|>" + "<|AUDIO|>" * 75 + "<|audio_eos|>Answer:"
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "input_features": feats["input_features"],
              "feature_attention_mask": feats["attention_mask"]}
    cont = torch.tensor([tokenizer(" B C D", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        prefix = thinker(**inputs, use_cache=True)
        with pytest.raises(RuntimeError):
            thinker(input_ids=cont, cache=prefix.past_key_values, use_cache=True,
                    attention_mask=torch.ones(1, ids.shape[1] + cont.shape[1], dtype=torch.long))


def test_voxtral_prompts_are_the_backends_ids(lms):
    if "voxtral" not in RUNNABLE:
        pytest.skip("voxtral does not run here")
    lm = lms("voxtral")
    context = lm.apply_chat_template([{"role": "user", "content": "Say [INST] please"}])
    ids = lm.tok_encode(context.replace("\u2063clips\u2063", "").replace("\u2063doc\u2063", "").replace("\u2063/doc\u2063", ""))
    expected = lm.tokenizer.apply_chat_template([{"role": "user", "content": "Say [INST] please"}], tokenize=True)
    expected = expected["input_ids"] if isinstance(expected, dict) or hasattr(expected, "keys") else expected
    assert ids == list(expected)
    inst = lm.tokenizer.convert_tokens_to_ids("[INST]")
    assert ids.count(inst) == 1  # the task's literal "[INST]" stayed text


# The real checkpoints' renderings that transformers' own processor tests pin (test_chat_template
# of tests/models/<arch>/test_processing_<arch>.py), reproduced by the tiny checkpoints' templates.
_MF_SYSTEM = ("You are Music Flamingo, a multimodal assistant for language and music. On each turn you receive an "
              "audio clip which contains music and optional text, you will receive at least one or both; use your "
              "world knowledge and reasoning to help the user with any task. Interpret the entirety of the content "
              "any input music--regardlenss of whether the user calls it audio, music, or sound.")
PINNED = {
    "musicflamingo": ([{"type": "text", "text": "What is it?"}, {"type": "audio", "path": "x.wav"}],
                      f"<|im_start|>system\n{_MF_SYSTEM}<|im_end|>\n<|im_start|>user\n<sound>What is it?<|im_end|>\n"
                      "<|im_start|>assistant\n"),
    "qwen3_asr": ([{"type": "audio", "path": "x.wav"}],
                  "<|im_start|>system\n<|im_end|>\n<|im_start|>user\n<|audio_start|><|audio_pad|><|audio_end|>"
                  "<|im_end|>\n<|im_start|>assistant\n"),
}


@pytest.mark.parametrize("arch", [a for a in PINNED if a in RUNNABLE])
def test_chat_template_renders_as_the_real_checkpoint(arch, arch_checkpoint):
    content, expected = PINNED[arch]
    processor = transformers.AutoProcessor.from_pretrained(arch_checkpoint(arch))
    conversation = [{"role": "user", "content": content}]
    assert processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True) == expected
