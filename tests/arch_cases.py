"""What the per-architecture tests share: which architectures run here, and transformers' own
forward on the processor's inputs as the naive reference a score must equal."""

from __future__ import annotations

import torch

from lm_eval_audio.arch.facts import ARCHS, unavailable

# Supported architectures whose packages import here; the others are refused by name (test_archs.py).
RUNNABLE = [a for a in ARCHS if unavailable(a) is None]
UNAVAILABLE = [a for a in ARCHS if a not in RUNNABLE]


def processor_inputs(lm, text: str, arrays: list) -> dict:
    """The processor's model inputs for `text` after the clips (no chat): one placeholder per clip
    as the processor takes it, or for a backend that encodes audio only inside a chat, the ids it
    gives the clips followed by the text's ids."""
    processor = lm.processor
    if lm.fmt.codec is None:
        prompt = lm.fmt.processor_clip * len(arrays) + text
        return processor(text=[prompt], audio=arrays, sampling_rate=lm.sampling_rate, return_tensors="pt")
    from lm_eval_audio.audio import wav_base64

    items = [{"type": "audio", "base64": wav_base64(a, lm.sampling_rate)} for a in arrays]
    chat = processor.apply_chat_template([{"role": "user", "content": items}], tokenize=True, return_dict=True,
                                         return_tensors="pt")
    ids = chat["input_ids"][0].tolist()
    tok = processor.tokenizer
    begin = ids.index(tok.convert_tokens_to_ids("[BEGIN_AUDIO]"))
    end = ids.index(tok.convert_tokens_to_ids("[/INST]"))
    ids = ids[begin:end] + tok.encode(text, add_special_tokens=False)
    return {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
            "input_features": chat["input_features"]}


def naive_logprob(lm, context: str, continuation: str, arrays: list) -> float:
    """log P(continuation | clips, context) from one full forward of the model's own forward."""
    if arrays:
        full, ctx = processor_inputs(lm, context + continuation, arrays), processor_inputs(lm, context, arrays)
    else:  # as lm-eval's hf model tokenises text: no special tokens added
        full = {"input_ids": torch.tensor([lm.tok_encode(context + continuation)])}
        ctx = {"input_ids": torch.tensor([lm.tok_encode(context)])}
    n = full["input_ids"].shape[1] - ctx["input_ids"].shape[1]
    with torch.no_grad():
        logits = lm.core(**full).logits[0, -n - 1: -1].float()
    target = full["input_ids"][0, -n:]
    return torch.log_softmax(logits, -1).gather(-1, target[:, None]).sum().item()
