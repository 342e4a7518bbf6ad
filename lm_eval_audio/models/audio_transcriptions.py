"""`--model audio-transcriptions`: ASR tasks through OpenAI's `/v1/audio/transcriptions`.

As served by `vllm serve` (Whisper), `transformers serve` and hosted endpoints. Built on lm-eval's
`TemplateAPI` (batching, `num_concurrent`, `max_retries`, `timeout`, ordering); `ServedAPI` owns
the per-request path, here a multipart upload of the clip as a 16 kHz mono WAV after our decoder.
The task's text prompt is not sent (as local `--model whisper`, the endpoint conditions on audio
only); answers are cut at the task's stop sequences.

model_args: `model`, `base_url` (the endpoint, or the server root ending in `/v1`),
`num_concurrent`, `max_retries`, `timeout`, `api_key_env` (default `OPENAI_API_KEY`), `language`
(sent as the form field `language` when set; transformers serve ignores it), `wav_subtype`.

RTFx here is audio seconds per second of wall clock over the whole `generate_until`, with
`num_concurrent` requests in flight and the network and the server's queue inside the clock: a
throughput figure for the deployment, not the per-batch compute time that the local classes
measure (`lm_eval_audio.trust.rtfx`). Tasks run one after another, so each has its own figure. It is
logged and written into the results config (`rtfx`, `rtfx_per_task`, `rtfx_clock: wall`,
`num_concurrent`).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from lm_eval.api.instance import Instance
from lm_eval.api.registry import register_model
from lm_eval.models.api_models import JsonChatStr, TemplateAPI
from lm_eval.models.utils import postprocess_generated_text

from lm_eval_audio.serve.client import ServedAPI, ServeError, ServerFeatureMissing
from lm_eval_audio.serve.wire import wav_bytes

logger = logging.getLogger(__name__)


@register_model("audio-transcriptions")
class AudioTranscriptions(ServedAPI, TemplateAPI):
    """Speech recognition through a transcription endpoint (generate_until only)."""

    model_name = "audio-transcriptions"
    endpoint_path = "audio/transcriptions"

    def __init__(self, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY", language: str | None = None,
                 wav_subtype: str = "FLOAT", **kwargs: Any) -> None:
        super().__init__(base_url=base_url, api_key_env=api_key_env, wav_subtype=wav_subtype, **kwargs)
        if self._batch_size > 1:
            logger.warning("%s: one clip per request; batch_size is ignored (use num_concurrent)", self.model_name)
            self._batch_size = 1
        self.language = language or None

    def identity_fields(self) -> dict[str, Any]:
        """The shared fields plus the language sent."""
        return {**super().identity_fields(), "language": self.language}

    def _context(self, req: Instance, name: str, keys: list[str]) -> JsonChatStr:
        if len(keys) != 1:
            raise ValueError(f"{name}: {self.model_name} needs exactly one audio clip per request, got {len(keys)}")
        return JsonChatStr(json.dumps({"clip": keys[0]}))

    def _create_payload(self, messages: dict, generate: bool = True, gen_kwargs: dict | None = None,
                        seed: int = 1234, eos: str | None = None, **kwargs: Any) -> dict:
        if not generate:
            raise ServerFeatureMissing(f"{self.model_name} only transcribes")
        fields = {"model": self.model}
        if self.language:
            fields["language"] = self.language
        return {"fields": fields, "wav": wav_bytes(self._decode_clip(messages["clip"]), self.wav_subtype)}

    def _post_kwargs(self, payload: dict, *, aio: bool) -> dict:
        if aio:
            import aiohttp

            form = aiohttp.FormData()
            for k, v in payload["fields"].items():
                form.add_field(k, v)
            form.add_field("file", payload["wav"], filename="audio.wav", content_type="audio/wav")
            return {"data": form}
        return {"data": payload["fields"], "files": {"file": ("audio.wav", payload["wav"], "audio/wav")}}

    def parse_generations(self, outputs: dict | list[dict], contexts: Any = None, **kwargs: Any) -> list[str]:
        """The transcript (`text`) of each answer, cut at the task's stop sequences."""
        outputs = outputs if isinstance(outputs, list) else [outputs]
        contexts = list(contexts or [None] * len(outputs))
        res = []
        for out, context in zip(outputs, contexts):
            pending, name = self._pending_of(context)
            text = out.get("text") if isinstance(out, dict) else None
            if not isinstance(text, str):
                raise ServeError(name,
                                 f"the answer has no transcript: {self._redact(json.dumps(out)[:300])}")
            # Whisper's text starts with the space of its first token; `--model whisper` and
            # OpenAI's endpoint strip it, transformers serve does not.
            res.append(postprocess_generated_text(text, pending.until, None).strip())
        self._cache_answers("generate_until", contexts, res)
        return res

    @staticmethod
    def parse_logprobs(outputs: Any, tokens: Any = None, ctxlens: Any = None, **kwargs: Any) -> list:
        """Not available: a transcription endpoint returns text only."""
        raise ServerFeatureMissing("audio-transcriptions returns text only; it cannot score loglikelihood")

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """Not available: a transcription endpoint returns text only."""
        raise ServerFeatureMissing(
            f"{self.model_name} only transcribes audio (generate_until); a transcription endpoint returns no "
            f"logprobs, so loglikelihood tasks cannot run on it"
        )

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        """Not available: a transcription endpoint returns text only."""
        raise ServerFeatureMissing(f"{self.model_name} only transcribes audio (generate_until)")
