"""`--model audio-chat-completions`: audio tasks through an OpenAI-compatible chat endpoint.

For `vllm serve`, `transformers serve` and hosted APIs (OpenAI's audio models and others). Built
on lm-eval's `LocalChatCompletion`: its batching, concurrency (`num_concurrent`), retries
(`max_retries`), `timeout` and result ordering are used as they are; `ServedAPI` owns the
per-request path (see `lm_eval_audio.serve.client`).

Each clip goes out as an `input_audio` part (16 kHz mono WAV after our decoder; see
`lm_eval_audio.serve.wire`), placed per the task's `<audio>` placeholders, else first in the last
user turn, as local `--model qwen2audio` places it. Run with `--apply_chat_template` (the server
applies the model's chat template to the messages; without the flag the whole context is sent as
one user turn).

model_args: `model` (the served model name), `base_url` (the endpoint, or the server root ending
in `/v1`), `num_concurrent`, `max_retries`, `timeout`, plus

- `api_key_env` (default `OPENAI_API_KEY`): the variable holding the key (environment or `.env`);
- `send_stop` (default true): send the task's stop sequences to the server. Answers are always cut
  at them here too. `transformers serve` 5.24 fails with HTTP 500 on `stop` for audio models
  (it hands the processor, not the tokenizer, to the stop-string matcher): use `send_stop=false`;
- `wav_subtype` (FLOAT | PCM_16; default FLOAT, the decoder's samples bit for bit).

`loglikelihood` needs prompt logprobs, which chat endpoints do not return (only vLLM's
`prompt_logprobs` extension does; not wired up here): it fails naming the generation variant of
the task to run instead.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from lm_eval.api.instance import Instance
from lm_eval.api.registry import register_model
from lm_eval.models.api_models import JsonChatStr
from lm_eval.models.openai_completions import LocalChatCompletion
from lm_eval.models.utils import postprocess_generated_text

from lm_eval_audio.serve.client import ServedAPI, ServeError, ServerFeatureMissing
from lm_eval_audio.serve.variants import generation_variants
from lm_eval_audio.serve.wire import clip_refs, materialise, place_audio

logger = logging.getLogger(__name__)


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


@register_model("audio-chat-completions")
class AudioChatCompletions(ServedAPI, LocalChatCompletion):
    """Chat completions with audio for lm-eval (generate_until); see the module docstring."""

    model_name = "audio-chat-completions"
    endpoint_path = "chat/completions"

    def __init__(self, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY", send_stop: bool = True,
                 wav_subtype: str = "FLOAT", **kwargs: Any) -> None:
        super().__init__(base_url=base_url, api_key_env=api_key_env, wav_subtype=wav_subtype, **kwargs)
        self.send_stop = _as_bool(send_stop)
        self._warned_plain = False

    def _messages(self, context: Any) -> list[dict]:
        if hasattr(context, "prompt"):  # JsonChatStr from --apply_chat_template
            return json.loads(context.prompt)
        if not self._warned_plain:
            logger.warning("%s: the context is not chat-formatted; it goes out as one user turn "
                           "(pass --apply_chat_template for system and few-shot turns)", self.model_name)
            self._warned_plain = True
        return [{"role": "user", "content": str(context)}]

    def _context(self, req: Instance, name: str, keys: list[str]) -> JsonChatStr:
        return JsonChatStr(json.dumps(place_audio(self._messages(req.args[0]), keys, name=name), ensure_ascii=False))

    def _create_payload(self, messages: list[dict], generate: bool = False, gen_kwargs: dict | None = None,
                        seed: int = 1234, eos: str | None = None, **kwargs: Any) -> dict:
        payload = super()._create_payload(messages, generate=generate, gen_kwargs=gen_kwargs, seed=seed, eos=eos)
        if not self.send_stop:
            payload.pop("stop", None)
        arrays = {key: self._decode_clip(key) for key in dict.fromkeys(clip_refs(messages))}
        payload["messages"] = materialise(messages, arrays, self.wav_subtype)
        return payload

    def parse_generations(self, outputs: dict | list[dict], contexts: Any = None, **kwargs: Any) -> list[str]:
        """The answer of each choice, cut at the task's stop sequences; an answer without text
        is an error (a content filter, a truncated reply), never an empty string."""
        outputs = outputs if isinstance(outputs, list) else [outputs]
        contexts = list(contexts or [None] * len(outputs))
        res = []
        for out, context in zip(outputs, contexts):
            pending, name = self._pending_of(context)
            try:
                choices = sorted(out["choices"], key=lambda c: c["index"])
                contents = [c["message"]["content"] for c in choices]
            except (KeyError, TypeError, IndexError) as e:
                raise ServeError(name, f"unexpected answer shape ({type(e).__name__}: {e}): "
                                       f"{self._redact(json.dumps(out)[:300])}") from None
            for c, content in zip(choices, contents):
                if content is None:
                    raise ServeError(name, f"the server returned no text (finish_reason={c.get('finish_reason')!r})")
                res.append(postprocess_generated_text(content, pending.until, self.think_end_token))
        return res

    # -- what a chat endpoint cannot do ------------------------------------------------------------
    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """Not available: chat endpoints return no prompt logprobs. Names the generation variant."""
        tasks = sorted({r.task_name for r in requests if r.task_name})
        variants = generation_variants(tasks)
        hint = (f"run the generation variant instead: --tasks {','.join(variants[t] for t in tasks if t in variants)}"
                if variants else "run a generation (generate_until) variant of the task instead")
        raise ServerFeatureMissing(
            f"{self.model_name} cannot score loglikelihood requests (task {', '.join(tasks) or '?'}): that needs "
            f"the prompt's token logprobs, which chat-completion servers do not return (transformers serve and "
            f"OpenAI's API have no such option; vLLM's `prompt_logprobs` extension is not wired up here). {hint}"
        )

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        """Not available, for the same reason as `loglikelihood`."""
        raise ServerFeatureMissing(
            f"{self.model_name} cannot score loglikelihood_rolling (perplexity) requests: that needs the "
            f"prompt's token logprobs, which chat-completion servers do not return"
        )
