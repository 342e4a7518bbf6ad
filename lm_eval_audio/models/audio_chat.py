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
- `wav_subtype` (FLOAT | PCM_16; default FLOAT, the decoder's samples bit for bit);
- `prompt_logprobs` (default false): the server is vLLM, score loglikelihood requests with its
  `prompt_logprobs` extension (below).

`loglikelihood` needs the prompt's token logprobs. OpenAI's API and transformers serve cannot
return them: the request fails naming the task's generation variant. vLLM can: with
`prompt_logprobs=true` each (context, continuation) goes out as the context's messages plus the
continuation as an open assistant reply (`add_generation_prompt=false`,
`continue_final_message=true`, `prompt_logprobs=1`, one generated token), and the score is the
sum over the prompt's last tokens, those whose text is the continuation; `is_greedy` is every one
of them ranking first. Tested against a stand-in that computes vLLM's response format with
transformers (`tests/_fake_vllm.py`), not against vLLM itself (no GPU here).
"""

from __future__ import annotations

import asyncio
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
                 wav_subtype: str = "FLOAT", prompt_logprobs: bool = False, **kwargs: Any) -> None:
        super().__init__(base_url=base_url, api_key_env=api_key_env, wav_subtype=wav_subtype, **kwargs)
        self.send_stop = _as_bool(send_stop)
        self.prompt_logprobs = _as_bool(prompt_logprobs)
        self._scoring = False
        self._warned_plain = False

    def identity_fields(self) -> dict[str, Any]:
        """The shared fields plus what changes the request body here."""
        return {**super().identity_fields(), "send_stop": self.send_stop, "prompt_logprobs": self.prompt_logprobs}

    def _messages(self, context: Any) -> list[dict]:
        if hasattr(context, "prompt"):  # JsonChatStr from --apply_chat_template
            return json.loads(context.prompt)
        if not self._warned_plain:
            logger.warning("%s: the context is not chat-formatted; it goes out as one user turn "
                           "(pass --apply_chat_template for system and few-shot turns)", self.model_name)
            self._warned_plain = True
        return [{"role": "user", "content": str(context)}]

    def _context(self, req: Instance, name: str, keys: list[str]) -> JsonChatStr:
        messages = place_audio(self._messages(req.args[0]), keys, name=name)
        if self._scoring:  # loglikelihood: the continuation as the assistant's (open) reply
            messages.append({"role": "assistant", "content": req.args[1]})
        return JsonChatStr(json.dumps(messages, ensure_ascii=False))

    def _create_payload(self, messages: list[dict], generate: bool = False, gen_kwargs: dict | None = None,
                        seed: int = 1234, eos: str | None = None, **kwargs: Any) -> dict:
        if self._scoring:
            return self._score_payload(messages, seed)
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
        self._cache_answers("generate_until", contexts, res)
        return res

    # -- loglikelihood: only with vLLM's prompt_logprobs ---------------------------------------------
    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """Log-probability of each continuation as the assistant's reply, from the prompt logprobs
        of vLLM's `prompt_logprobs` extension (model_arg `prompt_logprobs=true`); without it, an
        error naming the missing feature and the task's generation variant."""
        if not self.prompt_logprobs:
            tasks = sorted({r.task_name for r in requests if r.task_name})
            variants = generation_variants(tasks)
            hint = (f"run the generation variant instead: --tasks {','.join(variants[t] for t in tasks if t in variants)}"
                    if variants else "run a generation (generate_until) variant of the task instead")
            raise ServerFeatureMissing(
                f"{self.model_name} cannot score loglikelihood requests (task {', '.join(tasks) or '?'}): that needs "
                f"the prompt's token logprobs, which chat-completion servers do not return (transformers serve and "
                f"OpenAI's API have no such option; vLLM has the `prompt_logprobs` extension: pass "
                f"prompt_logprobs=true when the server is vLLM). {hint}"
            )
        if not requests:
            return []
        self._scoring = True
        try:
            contexts = self._track_requests(requests)
            results = self._run(lambda: asyncio.run(
                self.get_batched_requests(contexts, [None] * len(contexts), generate=False)))
        finally:
            self._scoring = False
        return [r for batch in results for r in batch]

    def _score_payload(self, messages: list[dict], seed: int) -> dict:
        arrays = {key: self._decode_clip(key) for key in dict.fromkeys(clip_refs(messages))}
        # The continuation is the assistant's message, rendered open (no end of turn) by the
        # server's chat template; one generated token is the least vLLM accepts.
        return {"model": self.model, "messages": materialise(messages, arrays, self.wav_subtype), "max_tokens": 1,
                "temperature": 0, "seed": seed, "prompt_logprobs": 1, "add_generation_prompt": False,
                "continue_final_message": True}

    def parse_logprobs(self, outputs: dict | list[dict], tokens: Any = None, ctxlens: Any = None,
                       **kwargs: Any) -> list[tuple[float, bool]]:
        """(sum of the continuation tokens' logprobs, whether each was the top token) per answer.

        The continuation's tokens are the prompt's last positions whose decoded text makes up the
        continuation exactly, plus the whitespace-only tokens right before them (the newline that
        ends the chat template's generation prompt): lm-eval's HF models move a context's
        trailing whitespace into the continuation (`_encode_pair`), so `--model qwen2audio` scores
        it too, and the two give the same numbers. vLLM lists, per prompt position, the prompt
        token with its rank (and, when it is not the top token, the top one too)."""
        outputs = outputs if isinstance(outputs, list) else [outputs]
        res = []
        for out, context in zip(outputs, tokens or [None] * len(outputs)):
            _, name = self._pending_of(context)
            continuation = json.loads(context.prompt)[-1]["content"]
            positions = out.get("prompt_logprobs") if isinstance(out, dict) else None
            if not positions:
                raise ServeError(name, "the answer has no prompt_logprobs: the server does not support vLLM's "
                                       "prompt_logprobs extension (use the task's generation variant)")
            text, total, greedy = "", 0.0, True
            for entry in reversed(positions):
                if not entry:
                    break
                token = max(entry.values(), key=lambda e: e.get("rank") or 1)  # the prompt's own token
                piece = token.get("decoded_token") or ""
                if len(text) >= len(continuation) and (piece.strip() or not piece):
                    break  # past the continuation and its leading whitespace
                text = piece + text
                total += float(token["logprob"])
                greedy = greedy and (token.get("rank") or 1) == 1
            if text.lstrip() != continuation.lstrip() or not text.endswith(continuation):
                raise ServeError(name, f"the prompt's last tokens read {text!r}, not the continuation "
                                       f"{continuation!r}: its tokens do not line up with the context's")
            res.append((total, greedy))
        self._cache_answers("loglikelihood", list(tokens or []), res)
        return res

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        """Not available: perplexity over a chat endpoint is not meaningful (no raw text scoring)."""
        raise ServerFeatureMissing(
            f"{self.model_name} cannot score loglikelihood_rolling (perplexity) requests: a chat endpoint scores "
            f"replies to messages, not raw text"
        )
