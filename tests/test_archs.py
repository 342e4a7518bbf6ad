"""Tiny offline checkpoints per architecture, and the facts table (`lm_eval_audio.arch.facts`) checked
on the real transformers objects they load into."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import transformers  # noqa: E402

from lm_eval_audio.arch.facts import ARCHS, facts, import_problem  # noqa: E402
from lm_eval_audio.tiny.archs import BUILDERS, ArchUnavailable, build_arch, omni_model_parts  # noqa: E402

SR = 16_000
CONTINUATION = " B C D"


def _buildable(arch: str) -> bool:
    return all(import_problem(m) is None for m in ARCHS[arch].requires)


BUILDABLE = [a for a in ("qwen2_audio", "audioflamingo3", "granite_speech", "voxtral") if _buildable(a)]


def _clip(seconds: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(SR * seconds)) * 0.1).astype(np.float32)


def _hashes(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict[str, tuple[Path, float]]:
    """Each buildable architecture's tiny checkpoint, built once: arch -> (dir, build seconds)."""
    root = tmp_path_factory.mktemp("archs")
    built = {}
    for arch in BUILDABLE:
        start = time.perf_counter()
        built[arch] = (build_arch(root / arch, arch), time.perf_counter() - start)
    return built


def _load(arch: str, directory: Path):
    f = facts(arch)
    processor = transformers.AutoProcessor.from_pretrained(directory)
    model = getattr(transformers, f.auto_class).from_pretrained(directory).eval()
    return processor, model


@pytest.fixture(scope="session")
def loaded(checkpoints):
    return {arch: _load(arch, d) for arch, (d, _) in checkpoints.items()}


def _wav_base64(clip: np.ndarray) -> str:
    import base64
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, clip, SR, format="WAV", subtype="FLOAT")
    return base64.b64encode(buf.getvalue()).decode()


def _chat_inputs(arch: str, processor, seconds: float = 3.0, text: str | None = "Answer:"):
    """(rendered prompt or None, model inputs) for one user turn: a clip, then `text`."""
    f = facts(arch)
    clip = _clip(seconds)
    # an array where the architecture takes one, else the clip as a base64 WAV file
    item = {"type": "audio", "audio": clip} if "audio" in f.chat_audio_keys else {"type": "audio", "base64": _wav_base64(clip)}
    content = [item] + ([{"type": "text", "text": text}] if text else [])
    conversation = [{"role": "user", "content": content}]
    if f.prompt_route == "chat_ids":
        inputs = processor.apply_chat_template(conversation, tokenize=True, return_dict=True, return_tensors="pt")
        return None, inputs
    prompt = processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    return prompt, processor(text=prompt, audio=[clip], return_tensors="pt")


def _continuation(processor) -> torch.Tensor:
    return torch.tensor([processor.tokenizer(CONTINUATION, add_special_tokens=False)["input_ids"]])


def _kv_reuse_diff(model, inputs: dict, cont: torch.Tensor, *, continuation_mask: bool = True) -> float:
    """Max |logit difference| between one full forward and prefix-with-cache + continuation ids."""
    n = inputs["input_ids"].shape[1]
    full = dict(inputs)
    full["input_ids"] = torch.cat([inputs["input_ids"], cont], 1)
    full["attention_mask"] = torch.ones_like(full["input_ids"])
    with torch.no_grad():
        reference = model(**full).logits[0]
        prefix = model(**inputs, use_cache=True)
        mask = {"attention_mask": full["attention_mask"]} if continuation_mask else {}
        rest = model(input_ids=cont, cache=prefix.past_key_values, use_cache=True, **mask).logits[0]
    return max((prefix.logits[0, -1] - reference[n - 1]).abs().max().item(), (rest - reference[n:]).abs().max().item())


# -- building ----------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", BUILDABLE)
def test_build_is_deterministic_and_small(arch, checkpoints, tmp_path):
    first, _ = checkpoints[arch]
    second = build_arch(tmp_path / arch, arch)
    assert _hashes(first) == _hashes(second)
    size = sum(p.stat().st_size for p in first.iterdir())
    assert size < 20 * 2**20, f"{arch}: {size} bytes"


@pytest.mark.parametrize("arch", [a for a in ARCHS if a not in BUILDABLE])
def test_unavailable_architecture_raises_naming_it(arch, tmp_path):
    with pytest.raises(ArchUnavailable, match=rf"^{arch}: "):
        build_arch(tmp_path / arch, arch)
    assert not (tmp_path / arch).exists()  # nothing half-written


def test_cli_error_names_the_architecture(tmp_path, capsys):
    from lm_eval_audio.cli import main

    missing = next(a for a in ARCHS if a not in BUILDABLE)
    with pytest.raises(SystemExit, match=rf"make-tiny-model: {missing}: "):
        main(["make-tiny-model", str(tmp_path / "x"), "--arch", missing])


def test_every_builder_has_facts():
    with pytest.raises(KeyError, match="qwen2_audio"):
        facts("wav2vec2")
    assert set(BUILDERS) == set(ARCHS)
    with pytest.raises(ValueError, match="small"):
        build_arch("/nonexistent", "audioflamingo3", size="small")


# -- loading and running -------------------------------------------------------------------------
@pytest.mark.parametrize("arch", BUILDABLE)
def test_loads_renders_and_runs(arch, loaded):
    f = facts(arch)
    processor, model = loaded[arch]
    assert type(processor).__name__ == f.processor_class
    assert type(model).__name__ == f.model_class
    # the template was saved by the builder; transformers itself has one only where claimed
    assert (getattr(processor, "default_chat_template", None) is not None) == f.default_chat_template
    prompt, inputs = _chat_inputs(arch, processor)
    if f.prompt_route == "text":
        assert f.chat_audio_rendering.format(n=1) in prompt
    else:  # ids from mistral-common: [BEGIN_AUDIO] then the [AUDIO] run
        ids = inputs["input_ids"][0].tolist()
        begin = processor.tokenizer.convert_tokens_to_ids("[BEGIN_AUDIO]")
        assert ids[ids.index(begin) + 1] == processor.audio_token_id
    assert set(f.audio_inputs) <= set(inputs)
    with torch.no_grad():
        logits = model(**inputs).logits
        assert logits.shape[:2] == inputs["input_ids"].shape and torch.isfinite(logits).all()
        out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_audioflamingo3_is_not_a_multimodal_lm(checkpoints):
    if "audioflamingo3" not in checkpoints:
        pytest.skip("audioflamingo3 not buildable")
    with pytest.raises(ValueError, match="Unrecognized configuration class"):
        transformers.AutoModelForMultimodalLM.from_pretrained(checkpoints["audioflamingo3"][0])


def test_audioflamingo3_template_renders_as_the_real_checkpoint(loaded):
    """The expected string of transformers' own AF3 processor test (real checkpoint's template)."""
    if "audioflamingo3" not in loaded:
        pytest.skip("audioflamingo3 not buildable")
    processor, _ = loaded["audioflamingo3"]
    question = "What is surprising about the relationship between the barking and the music?"
    conversation = [{"role": "user", "content": [{"type": "text", "text": question},
                                                 {"type": "audio", "path": "dogs.wav"}]}]
    expected = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                f"<|im_start|>user\n<sound>{question}<|im_end|>\n<|im_start|>assistant\n")
    assert processor.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True) == expected


# -- the facts table, on the real objects --------------------------------------------------------
@pytest.mark.parametrize("arch", BUILDABLE)
def test_placeholder_and_expansion(arch, loaded):
    f = facts(arch)
    processor, _ = loaded[arch]
    assert getattr(processor, f.placeholder_attr) == f.audio_placeholder
    assert f.audio_kwarg == "audio"
    placeholder_id = processor.tokenizer.convert_tokens_to_ids(f.audio_placeholder)
    counts = []
    for seconds in (3, 10):
        if f.prompt_route == "chat_ids":
            inputs = _chat_inputs(arch, processor, seconds, text=None)[1]
        else:  # one placeholder in the text ...
            inputs = processor(text=f"{f.audio_placeholder}Answer:", audio=[_clip(seconds)], return_tensors="pt")
        counts.append(int((inputs["input_ids"] == placeholder_id).sum()))
    # ... expanded by the processor to one id per audio position
    expected = {"qwen2_audio": [75, 250], "audioflamingo3": [75, 250], "granite_speech": [30, 102],
                "voxtral": [375, 375]}[arch]
    assert counts == expected
    assert f"{expected[0]} at 3 s, {expected[1]} at 10 s" in f.tokens_per_clip


@pytest.mark.parametrize("arch", BUILDABLE)
def test_max_seconds_and_sampling_rate(arch, loaded):
    f = facts(arch)
    processor, _ = loaded[arch]
    extractor = getattr(processor, f.feature_extractor_attr)
    assert extractor.sampling_rate == f.sampling_rate
    if arch == "audioflamingo3":
        assert processor.max_audio_len == f.max_seconds
    elif arch == "voxtral":  # no limit: 40 s becomes two 30 s chunks
        inputs = _chat_inputs(arch, processor, 40, text=None)[1]
        assert inputs["input_features"].shape[0] == 2 and "750 at 40 s" in f.tokens_per_clip
        assert f.max_seconds is None
    elif f.max_seconds is None:
        assert getattr(extractor, "n_samples", None) is None and getattr(extractor, "chunk_length", None) is None
    else:
        assert extractor.chunk_length == f.max_seconds == extractor.n_samples / extractor.sampling_rate


@pytest.mark.parametrize("arch", BUILDABLE)
def test_kv_reuse_and_logits_to_keep(arch, loaded):
    f = facts(arch)
    processor, model = loaded[arch]
    _, inputs = _chat_inputs(arch, processor)
    cont = _continuation(processor)
    diff = _kv_reuse_diff(model, inputs, cont)
    assert (diff < 1e-4) == f.kv_reuse, diff
    full = dict(inputs, input_ids=torch.cat([inputs["input_ids"], cont], 1))
    full["attention_mask"] = torch.ones_like(full["input_ids"])
    keep = cont.shape[1] + 1
    with torch.no_grad():
        reference = model(**full).logits[0, -keep:]
        if f.logits_to_keep:
            kept = model(**full, logits_to_keep=keep).logits[0]
            assert kept.shape[0] == keep and torch.allclose(kept, reference, atol=1e-6)
        else:  # accepted through **kwargs and ignored: every position comes back
            assert model(**full, logits_to_keep=keep).logits.shape[1] == full["input_ids"].shape[1]


@pytest.mark.parametrize("arch", BUILDABLE)
def test_module_paths(arch, loaded):
    f = facts(arch)
    _, model = loaded[arch]
    lm = model.get_submodule(f.language_model)
    assert model.get_submodule(f.embeddings) is model.get_input_embeddings() is lm.get_input_embeddings()
    assert model.get_submodule(f.lm_head) is model.get_output_embeddings()


# -- Qwen2.5-Omni: the thinker, measured without its processor (torchvision is missing) -------------
@pytest.fixture(scope="session")
def omni(tmp_path_factory):
    tokenizer, model = omni_model_parts()
    directory = tmp_path_factory.mktemp("omni")
    model.save_pretrained(directory)
    return tokenizer, model, directory


def test_omni_loads_as_the_whole_model_and_needs_spk_dict(omni):
    f = facts("qwen2_5_omni")
    _, _, directory = omni
    assert (directory / "spk_dict.pt").exists() is False
    with pytest.raises(OSError, match="spk_dict.pt"):
        getattr(transformers, f.auto_class).from_pretrained(directory)
    torch.save({}, directory / "spk_dict.pt")
    model = getattr(transformers, f.auto_class).from_pretrained(directory)
    assert type(model).__name__ == f.model_class and not model.has_talker
    with pytest.raises(TypeError):  # the Omni model has no forward of its own
        model(input_ids=torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match="Chelsie"):
        model.generate(input_ids=torch.tensor([[1, 2]]), generation_mode="text")


def test_omni_thinker_kv_reuse_and_logits_to_keep(omni):
    f = facts("qwen2_5_omni")
    tokenizer, model, _ = omni
    thinker = model.get_submodule(f.forward_module)
    assert model.get_submodule(f.embeddings) is thinker.get_input_embeddings()
    assert model.get_submodule(f.language_model).get_input_embeddings() is thinker.get_input_embeddings()
    assert model.get_submodule(f.lm_head) is thinker.get_output_embeddings()
    extractor = transformers.WhisperFeatureExtractor(feature_size=128)
    feats = extractor([_clip(3)], sampling_rate=SR, return_attention_mask=True, padding="max_length", return_tensors="pt")
    n_audio = 75  # the Whisper rule for 300 valid frames, as Qwen2_5OmniProcessor expands it
    prompt = "<|im_start|>user\n" + f.chat_audio_rendering.replace(f.audio_placeholder, f.audio_placeholder * n_audio)
    ids = tokenizer(prompt + "Answer:", return_tensors="pt")["input_ids"]
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "input_features": feats["input_features"],
              "feature_attention_mask": feats["attention_mask"]}
    cont = torch.tensor([tokenizer(CONTINUATION, add_special_tokens=False)["input_ids"]])
    assert _kv_reuse_diff(thinker, inputs, cont, continuation_mask=False) < 1e-4
    with pytest.raises(RuntimeError):  # with the full-length mask the mrope positions come out full-length
        _kv_reuse_diff(thinker, inputs, cont, continuation_mask=True)
    assert f.logits_to_keep is False
    with torch.no_grad():  # accepted and ignored
        assert thinker(**inputs, logits_to_keep=2).logits.shape[1] == ids.shape[1]
    with torch.no_grad():
        out = thinker.generate(**inputs, max_new_tokens=2, do_sample=False)
    assert out.shape[1] == ids.shape[1] + 2
