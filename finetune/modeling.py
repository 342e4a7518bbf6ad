"""The model being trained: any architecture hf-audio serves, with LoRA layers, and the training forward.

The forward is the evaluation path with gradients. Qwen2-Audio (the `qwen2audio` model):
audio through `encode_audio` on each clip's own length, projected features scattered into the
token embeddings at the placeholder positions, the language model on `inputs_embeds`. Any
other architecture (`hf-audio`): the model's own forward on the processor's audio tensors.
Both compute the LM head only where labels are set.
"""

from __future__ import annotations

import logging
from collections import Counter

import torch
import torch.nn.functional as F
from torch import nn

from lm_eval_audio.arch.encoder import AudioFeatures, encode_audio
from lm_eval_audio.models.archs_support import forward_module

from finetune.collate import IGNORE_INDEX
from finetune.config import LoraConfigSection, ModelConfig

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_base(model: ModelConfig):
    """(model, tokenizer, feature_extractor) of the base checkpoint."""
    import transformers

    from lm_eval_audio.models.archs_support import check_loadable

    kwargs = {"revision": model.revision} if model.revision else {}
    try:
        # The class hf-audio loads the checkpoint with (AutoModelForMultimodalLM, or the facts
        # table's class for an architecture outside its mapping); unusable architectures are named.
        model_class, _ = check_loadable(model.pretrained, "finetune", revision=model.revision)
        base = model_class.from_pretrained(model.pretrained, dtype=_DTYPES[model.dtype], **kwargs)
        tokenizer = transformers.AutoTokenizer.from_pretrained(model.pretrained, **kwargs)
        feature_extractor = transformers.AutoFeatureExtractor.from_pretrained(model.pretrained, **kwargs)
    except OSError as e:
        raise ValueError(f"cannot load base model {model.pretrained!r}: {e}") from e
    return base, tokenizer, feature_extractor


def load_processor(model: ModelConfig, model_type: str):
    """The base checkpoint's processor (prompt format and chat template), loaded as evaluation loads it."""
    from lm_eval_audio.models.archs_support import load_processor as load

    return load(model.pretrained, model_type, revision=model.revision)


def apply_lora(base, lora: LoraConfigSection):
    """Wrap `base` in a PEFT model with LoRA on the configured targets; logs where they landed."""
    from peft import LoraConfig, get_peft_model

    peft_config = LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, bias=lora.bias,
        target_modules=lora.target_modules, modules_to_save=list(lora.modules_to_save) or None,
        task_type="CAUSAL_LM",
    )
    try:
        model = get_peft_model(base, peft_config)
    except ValueError as e:
        raise ValueError(f"lora.target_modules {lora.target_modules!r} / modules_to_save "
                         f"{lora.modules_to_save}: {e}") from e
    where = Counter(_tower(name) for name, m in model.named_modules() if hasattr(m, "lora_A") and name.endswith(("proj", "fc1", "fc2", "linear")))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info("LoRA layers per tower: %s; modules_to_save: %s; trainable %d of %d parameters (%.2f%%)",
                dict(where), lora.modules_to_save or "none", trainable, total, 100 * trainable / total)
    return model


def _tower(module_name: str) -> str:
    for tower in ("language_model", "audio_tower", "multi_modal_projector"):
        if tower in module_name:
            return tower
    return "other"


class AudioLMForTraining(nn.Module):
    """Loss of a batch from `AudioSFTCollator`: mean cross-entropy over the answer tokens.

    Wraps the PEFT model so that Trainer (and DDP under `accelerate launch`) call one forward
    that contains the whole computation, encoder included.
    """

    def __init__(self, peft_model, audio_token_id: int) -> None:
        super().__init__()
        self.peft_model = peft_model
        self.audio_token_id = audio_token_id
        base = peft_model.get_base_model()
        self.forward_module = forward_module(base.config.model_type)  # an Omni model's thinker
        core = self.core
        inner = core.model
        # A frozen audio path needs no graph: skip it in backward (own-length path).
        towers = [getattr(inner, name, None) for name in ("audio_tower", "multi_modal_projector")]
        self.audio_trainable = any(p.requires_grad for m in towers if m is not None for p in m.parameters())

    @property
    def core(self):
        """The model that runs, LoRA layers injected: the loaded model, or the part of it the
        facts table names (as hf-audio runs it)."""
        base = self.peft_model.get_base_model()
        return base.get_submodule(self.forward_module) if self.forward_module else base

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor,
        input_features: torch.Tensor | None = None,
        valid_frames: torch.Tensor | None = None,
        **audio_inputs: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        if valid_frames is None:
            return self._processor_forward(input_ids, attention_mask, labels, input_features, audio_inputs)
        core = self.core
        embeds = core.get_input_embeddings()(input_ids)
        audio_positions = input_ids == self.audio_token_id
        if input_features is not None:
            features = AudioFeatures(input_features=input_features, valid_frames=valid_frames.tolist())
            with torch.set_grad_enabled(self.audio_trainable and torch.is_grad_enabled()):
                audio = torch.cat(encode_audio(core, features, own_length=True)).to(embeds.dtype)
            if audio.shape[0] != int(audio_positions.sum()):
                raise ValueError(
                    f"batch has {int(audio_positions.sum())} audio placeholder positions for {audio.shape[0]} audio features"
                )
            embeds = embeds.masked_scatter(audio_positions[..., None], audio)
        elif audio_positions.any():
            raise ValueError("batch has audio placeholder positions but no audio features")
        hidden = core.model.language_model(
            inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False
        ).last_hidden_state
        # Position t predicts token t+1; the LM head runs only where a label is set.
        targets = labels[:, 1:]
        scored = targets != IGNORE_INDEX
        logits = core.lm_head(hidden[:, :-1][scored]).float()
        gold = targets[scored]
        loss = F.cross_entropy(logits, gold)
        correct = (logits.argmax(-1) == gold).float().mean().detach()
        return {"loss": loss, "token_accuracy": correct}

    def _processor_forward(self, input_ids, attention_mask, labels, input_features, audio_inputs):
        """Any architecture: its own forward on the processor's audio tensors, the LM head only at
        the positions that predict a label (`models.forward.positions_head`, as evaluation)."""
        from lm_eval_audio.models.forward import positions_head

        targets = labels[:, 1:]
        scored = targets != IGNORE_INDEX
        width = int(scored.sum(1).max())
        positions = torch.zeros((len(labels), width), dtype=torch.long, device=labels.device)
        gold = torch.full((len(labels), width), IGNORE_INDEX, dtype=torch.long, device=labels.device)
        for i in range(len(labels)):
            where = scored[i].nonzero().squeeze(-1)
            positions[i, : len(where)] = where
            gold[i, : len(where)] = targets[i, where]
        if input_features is not None:
            audio_inputs = {"input_features": input_features, **audio_inputs}
        with positions_head(self.core) as head:
            head.positions = positions
            logits = self.core(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                               **audio_inputs).logits.float()
        kept = gold != IGNORE_INDEX
        loss = F.cross_entropy(logits[kept], gold[kept])
        correct = (logits[kept].argmax(-1) == gold[kept]).float().mean().detach()
        return {"loss": loss, "token_accuracy": correct}
