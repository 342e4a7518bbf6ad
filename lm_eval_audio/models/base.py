"""What every audio model class shares, so each fact is decided once for all of them.

`AudioModelSupport` is a mixin for lm-eval model classes (`qwen2audio`, `whisper`, and any
audio model added later). It owns:

- the audio control (`audio_control=none|silence|shuffle`, `controls.py`);
- `verify_batch=N` (`verify.py`);
- RTFx per task over generation batches that carry audio (`rtfx.py`);
- the count of clips cut by the long-clip policy, over the whole run;
- the model's identity, and the request cache's table for it (`identity.py`);
- the protocol fields of the results file (`protocol_info`): control, verification, RTFx,
  truncation, identity, the WER normaliser and its version, and the default judge.
"""

from __future__ import annotations

import logging
from typing import Any

from lm_eval_audio.audio import record_content_digests
from lm_eval_audio.registration import register_components
from lm_eval_audio.trust.controls import DEFAULT_SEED, AudioControl, gather_ranks
from lm_eval_audio.trust.identity import identity_digest, scope_request_cache, scoring_args
from lm_eval_audio.trust.rtfx import RTFxByTask
from lm_eval_audio.trust.verify import BatchVerification

logger = logging.getLogger(__name__)


class AudioModelSupport:
    """Mixin: call `_init_support` in `__init__`, `see_requests` at the top of every request
    method, and merge `protocol_info()` into `get_model_info()`."""

    _support_name = "model"

    def _init_support(self, name: str, *, audio_control: str = "none", audio_control_seed: int | str = DEFAULT_SEED,
                      verify_batch: int | str = 0, model_args: dict[str, Any] | None = None) -> None:
        register_components()  # our metrics and filters for any task this model runs (a model loads first)
        self._support_name = name
        self.control = AudioControl(audio_control, audio_control_seed, model=name)
        self.verification = BatchVerification(verify_batch, model=name)
        self.rtfx = RTFxByTask()
        self._truncated_keys: set[str] = set()  # distinct clips cut over the run (a rescore is not a new cut)
        self._model_args = dict(model_args or {})

    # -- requests ------------------------------------------------------------------------
    def see_requests(self, requests: list) -> None:
        """Show the model a full request list before any of it is scored: file clips get their
        content digest recorded and the shuffle control rewrites each request's audio to its
        donor's here; lm-eval's cache calls it before looking requests up, so the cache keys on
        the content of the audio the model hears."""
        if getattr(self, "mode", None) != "text":  # mode=text hears no clip: its files need not exist
            record_content_digests(requests)
        self.control.prepare(requests, gather_ranks() if self.control.kind == "shuffle" else None)

    def note_truncated(self, clip_key: str) -> None:
        """Count a clip cut by the long-clip policy (each distinct clip once per run)."""
        self._truncated_keys.add(clip_key)

    @property
    def truncated_clips(self) -> int:
        """Distinct clips cut by the long-clip policy so far in this run."""
        return len(self._truncated_keys)

    # -- identity ------------------------------------------------------------------------
    def identity_fields(self) -> dict[str, Any]:
        """Everything that can change this model's scores; subclasses add resolved facts
        (dtype, checkpoint fingerprint) to `scoring_args(model args)`."""
        return {**scoring_args(self._model_args), **self.control.as_dict()}

    def freeze_identity(self) -> None:
        """Fix the identity as loaded (call at the end of `__init__`): a checkpoint rewritten on
        disk later must not change what this instance says it is."""
        self._identity = identity_digest(self._support_name, self.identity_fields())

    def cache_identity(self) -> str:
        """Digest of `identity_fields()` at load time: lm-eval's request cache keeps one table per identity."""
        if getattr(self, "_identity", None) is None:
            self.freeze_identity()
        return self._identity

    def set_cache_hook(self, cache_hook) -> None:
        """lm-eval's `CachingLM` hands its hook here: the request cache moves onto this
        identity's own table (`scope_request_cache`), so runs that differ in any scoring
        argument never share an answer."""
        super().set_cache_hook(cache_hook)
        scope_request_cache(cache_hook, self.cache_identity())

    # -- results file --------------------------------------------------------------------
    def protocol_info(self) -> dict[str, Any]:
        """Fields for `get_model_info()`, i.e. the results file's `config`."""
        from lm_eval_audio.filters.judge import judge_settings
        from lm_eval_audio.metrics.wer import normaliser_info
        from lm_eval_audio.trust.training import adapter_training

        return {
            **self.control.as_dict(),
            **self.verification.as_dict(),
            **self.rtfx.as_dict(),
            "truncated_clips": self.truncated_clips,
            "model_identity": self.cache_identity(),
            **normaliser_info(),
            **judge_settings(),
            "peft_training": adapter_training(self._model_args.get("peft")),
        }
