"""The request path shared by our served models, on top of lm-eval's `TemplateAPI`.

lm-eval's `TemplateAPI` keeps what it does well: batching, sorting, the `aiohttp` session with
`num_concurrent` connections, tenacity retries (`max_retries` attempts, exponential backoff) and
the order of results. `ServedAPI.generate_until` only prepares the requests (audio as clip
references, document names, stop strings) and hands them to `TemplateAPI.generate_until`. It
replaces the two per-request methods, `model_call` (one request at a time) and `amodel_call`
(concurrent), because lm-eval's versions

- build every payload before waiting for a connection (all of a run's base64 audio at once);
- log failures as `repr(exception)`, and aiohttp's repr includes the request headers, i.e. the
  `Authorization: Bearer <key>` header;
- turn an unreadable answer into "" (a silently wrong answer instead of an error), and cache
  partial results under a key without the audio.

Here a failed attempt raises `ServeError` (tenacity retries it); once the attempts are spent the
model class re-raises it with the document named. Nothing is returned or cached for a request
that failed. Every server message we repeat goes through `redact` first.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from lm_eval.api.instance import Instance

from lm_eval_audio.audio import SAMPLE_RATE, as_clip_list, clip_key, decode_audio, record_content_digests
from lm_eval_audio.registration import register_components
from lm_eval_audio.trust.identity import identity_digest, scope_request_cache
from lm_eval_audio.trust.rtfx import RTFxByTask
from lm_eval_audio.serve.wire import WAV_SUBTYPES
from lm_eval_audio.openai_client import KEY_ENV, find_api_key, redact, redact_url, url_secrets

logger = logging.getLogger(__name__)


class ServeError(RuntimeError):
    """A request to the server failed; `name` is the document, the message never holds the key."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


class ServerFeatureMissing(NotImplementedError):
    """The request type needs a server feature that this endpoint does not offer."""


@dataclass
class Pending:
    """What the model class knows about one distinct request body while it is in flight."""

    names: list[str] = field(default_factory=list)  # "task doc N", for errors
    args: list[tuple] = field(default_factory=list)  # the Instance args: lm-eval's cache key
    until: list[str] = field(default_factory=list)


def endpoint_url(base_url: str | None, path: str, model_name: str) -> str:
    """The endpoint to POST to: `base_url` as lm-eval takes it (the full endpoint URL), or a
    server root ending in `/v1`, to which `path` is appended."""
    if not base_url:
        raise ValueError(f"{model_name}: base_url is required, e.g. base_url=http://127.0.0.1:8000/v1/{path}")
    url = base_url.rstrip("/")
    return f"{url}/{path}" if url.endswith("/v1") else url


class ServedAPI:
    """Mixin placed before a `TemplateAPI` subclass; see the module docstring.

    Subclasses set `model_name` and `endpoint_path` and implement `_context(req, name, keys)`:
    the request body's stand-in (a `JsonChatStr` holding clip references, see
    `lm_eval_audio.serve.wire`) that their `_create_payload` turns into the real body.
    """

    model_name = "served model"  # the --model name, for messages
    endpoint_path = ""  # appended to a base_url ending in /v1

    def __init__(self, base_url: str | None = None, api_key_env: str = KEY_ENV, wav_subtype: str = "FLOAT",
                 **kwargs: Any) -> None:
        if wav_subtype not in WAV_SUBTYPES:
            raise ValueError(f"{self.model_name}: wav_subtype must be one of {', '.join(WAV_SUBTYPES)}")
        register_components()  # our metrics and filters for any task this model runs (a model loads first)
        # The server tokenizes: requests go as messages or uploads, never as token ids.
        kwargs.pop("tokenizer_backend", None)
        kwargs.pop("tokenized_requests", None)
        # Credentials a URL may carry (`https://user:KEY@host`, `?api-key=...`) never leave it: results,
        # cache identity and messages show `shown_url`.
        self._given_base_url = base_url
        self.shown_url = redact_url(endpoint_url(base_url, self.endpoint_path, self.model_name))
        super().__init__(base_url=endpoint_url(base_url, self.endpoint_path, self.model_name),
                         tokenizer_backend=None, tokenized_requests=False, **kwargs)
        if not self.model:
            raise ValueError(f"{self.model_name}: model= is required (the name the server serves)")
        self.api_key_env = api_key_env or KEY_ENV
        self.wav_subtype = wav_subtype
        self.rtfx = RTFxByTask()
        self._run_audio = [0.0, 0]  # audio seconds and clips decoded in the current run
        self._pending: dict[str, Pending] = {}
        self._clips: dict[str, tuple[Any, str]] = {}  # clip key -> (clip, name for errors)
        self._audio_lock = threading.Lock()
        self._counted: set[str] = set()

    @property
    def eos_string(self) -> str | None:
        # The server stops at its model's end of turn; there is no tokenizer here to ask.
        return self._eos_string

    # -- key and headers ---------------------------------------------------------------------
    @cached_property
    def api_key(self) -> str:
        """The key from `api_key_env` (environment or `.env`); "" when there is none, since local
        servers need none. A server that wants one answers 401, which is reported by name."""
        return find_api_key(env_var=self.api_key_env, required=False)

    @cached_property
    def header(self) -> dict:
        """Request headers: `Authorization: Bearer <key>` when there is a key."""
        headers = dict(self._header or {})
        if self.api_key and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _redact(self, text: str) -> str:
        return redact(text, self.api_key, *url_secrets(self.base_url))

    # -- lm-eval's record of the model args --------------------------------------------------
    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None):
        """lm-eval's constructor from `--model_args`, remembering the string: lm-eval writes it to
        the results verbatim, and `get_model_info` replaces it there when its URL holds a key."""
        lm = super().create_from_arg_string(arg_string, additional_config)
        lm._model_args = arg_string
        return lm

    @classmethod
    def create_from_arg_obj(cls, arg_dict: dict, additional_config: dict | None = None):
        """As `create_from_arg_string`, for model args given as a mapping."""
        lm = super().create_from_arg_obj(arg_dict, additional_config)
        lm._model_args = dict(arg_dict)
        return lm

    def _redacted_model_args(self) -> str | dict | None:
        """The model args lm-eval records, with the URL's credentials redacted; None when the
        URL holds none (lm-eval's record stands) or the args are unknown."""
        given, args = self._given_base_url, getattr(self, "_model_args", None)
        if args is None or not url_secrets(given):
            return None
        if isinstance(args, str):
            return args.replace(given, redact_url(given))
        return {k: redact_url(v) if k == "base_url" else v for k, v in args.items()}

    # -- bookkeeping -------------------------------------------------------------------------
    @staticmethod
    def _context_key(context: Any) -> str:
        return context.prompt if hasattr(context, "prompt") else str(context)

    def _name_of(self, messages: list) -> str:
        names = [n for m in messages for n in self._pending.get(self._context_key(m), Pending()).names]
        return ", ".join(names) if names else "request"

    def _pending_of(self, context: Any) -> tuple[Pending, str]:
        pending = self._pending.get(self._context_key(context), Pending()) if context is not None else Pending()
        return pending, ", ".join(pending.names) or "request"

    def _decode_clip(self, key: str) -> np.ndarray:
        """Decode a clip of the requests in flight; RTFx counts each distinct clip once, however
        many attempts its request takes."""
        clip, name = self._clips[key]
        array = decode_audio(clip, name=name)
        with self._audio_lock:
            if name not in self._counted:
                self._counted.add(name)
                self._run_audio[0] += len(array) / SAMPLE_RATE
                self._run_audio[1] += 1
        return array

    def _context(self, req: Instance, name: str, keys: list[str]) -> Any:
        raise NotImplementedError

    def _track_requests(self, requests: list[Instance]) -> list:
        """The request bodies' stand-ins (`_context`), one per request, with their clips,
        document names, Instance args (the cache key) and stop strings recorded."""
        contexts = []
        for req in requests:
            name = f"{req.task_name} doc {req.doc_id}"
            clips = as_clip_list(req.args[2].get("audio")) if len(req.args) > 2 else []
            keys = [clip_key(c) for c in clips]
            for j, (clip, key) in enumerate(zip(clips, keys)):
                self._clips.setdefault(key, (clip, f"{name}, clip {j}"))
            context = self._context(req, name, keys)
            gen_kwargs = req.args[1] if isinstance(req.args[1], dict) else {}  # a continuation for loglikelihood
            until = gen_kwargs.get("until") or []
            p = self._pending.setdefault(self._context_key(context),
                                         Pending(until=[until] if isinstance(until, str) else list(until)))
            p.names.append(name)
            p.args.append(req.args)
            contexts.append(context)
        return contexts

    def _run(self, call: Callable[[], list], task: str | None = None) -> list:
        """Run `call` (lm-eval's request machinery over tracked requests); a request spent after
        its attempts re-raises naming its document. With `task`, the wall clock of the whole call
        and the audio it sent count towards that task's RTFx."""
        start = time.perf_counter()
        self._run_audio = [0.0, 0]
        try:
            results = call()
        except ServeError as e:
            raise ServeError(
                e.name,
                f"request to {self.shown_url} failed after {self.max_retries} attempt(s): {e.reason} "
                f"(nothing was recorded for it; raise max_retries or timeout, or check the server)",
            ) from None
        finally:
            self._pending.clear()
            self._clips.clear()
            self._counted.clear()
        if task is not None and self._run_audio[1]:
            self.rtfx.add(task, self._run_audio[0], time.perf_counter() - start, self._run_audio[1])
        return results

    def see_requests(self, requests: list[Instance]) -> None:
        """lm-eval's request cache shows the model its requests here before looking them up
        (the start-up hook): file clips get their content digest recorded in the arguments, so
        the cache keys on the audio, not on its path."""
        record_content_digests(requests)

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        """Generate (or transcribe) each request through the server, in lm-eval's order; a
        request that fails after its attempts stops the run naming its document.

        lm-eval hands every task's generation requests over at once; they run task by task here,
        so that each task's RTFx is its own wall clock (as `rtfx_per_task` of the local classes)."""
        by_task: dict[str, list[int]] = {}
        for i, req in enumerate(requests):
            by_task.setdefault(req.task_name or "", []).append(i)
        results: list[str | None] = [None] * len(requests)
        for task, indices in by_task.items():
            group = [requests[i] for i in indices]
            prepared = [
                Instance(request_type="generate_until", doc=req.doc, arguments=(context, req.args[1]), idx=req.idx,
                         metadata=(req.task_name, req.doc_id, req.repeats))
                for req, context in zip(group, self._track_requests(group))
            ]
            answers = self._run(lambda: super(ServedAPI, self).generate_until(prepared, disable_tqdm), task=task)
            for i, answer in zip(indices, answers):
                results[i] = answer
        if self.rtfx.clips:
            logger.info("%s %s (wall clock, num_concurrent=%d)", self.model_name, self.rtfx.summary(), self._concurrent)
        return results

    # -- identity for lm-eval's request cache -----------------------------------------------------
    def identity_fields(self) -> dict[str, Any]:
        """What can change an answer: the endpoint, the served model and how requests are made
        (not num_concurrent, max_retries or timeout, which change only when answers arrive)."""
        return {"base_url": self.shown_url, "model": self.model, "wav_subtype": self.wav_subtype,
                "seed": self._seed, "max_gen_toks": self._max_gen_toks}

    def cache_identity(self) -> str:
        """Digest of `identity_fields()`: each identity gets its own table in lm-eval's request
        cache (`set_cache_hook`), so runs against two servers never share answers."""
        return identity_digest(self.model_name, self.identity_fields())

    def set_cache_hook(self, cache_hook) -> None:
        """Scope lm-eval's request cache to this identity (`trust.identity.scope_request_cache`)."""
        super().set_cache_hook(cache_hook)
        scope_request_cache(cache_hook, self.cache_identity())

    # -- one request ---------------------------------------------------------------------------
    def _payload(self, messages: list, generate: bool, gen_kwargs: dict | None, kwargs: dict) -> dict:
        return self._create_payload(
            self.create_message(messages), generate=generate, gen_kwargs=copy.deepcopy(gen_kwargs),
            seed=self._seed, eos=self.eos_string, **kwargs,
        )

    def _post_kwargs(self, payload: dict, *, aio: bool) -> dict:
        """Keyword arguments carrying `payload` for `requests.post` / `aiohttp` (JSON here)."""
        return {"json": payload}

    def _failure(self, status: int, text: str) -> str:
        body = self._redact(" ".join(text.split()))[:500]
        if status in (401, 403):
            if self.api_key:
                return (f"HTTP {status}: the server rejected the API key from {self.api_key_env} "
                        f"(the key is not shown): {body}")
            return f"HTTP {status}: the server wants an API key and none was sent: set {self.api_key_env}: {body}"
        if status == 429:
            return f"HTTP 429: rate limited by the server: {body}"
        return f"HTTP {status}: {body}"

    def _decode_json(self, text: str, name: str) -> Any:
        try:
            return json.loads(text)
        except ValueError:
            raise ServeError(name, f"the server's answer is not JSON: {self._redact(text[:300])!r}") from None

    def model_call(self, messages: list, *, generate: bool = True, gen_kwargs: dict | None = None, **kwargs) -> Any:
        """One attempt of one request (lm-eval retries it); raises `ServeError` on failure."""
        import requests

        name = self._name_of(messages)
        payload = self._payload(messages, generate, gen_kwargs, kwargs)
        try:
            response = requests.post(
                self.base_url, headers=self.header, verify=self.verify_certificate, timeout=self.timeout,
                **self._post_kwargs(payload, aio=False),
            )
        except requests.Timeout:
            raise ServeError(name, f"no answer within timeout={self.timeout} s") from None
        except requests.RequestException as e:
            raise ServeError(name, f"cannot reach {self.shown_url}: {type(e).__name__}: {self._redact(str(e))}") from None
        if response.status_code >= 400:
            reason = self._failure(response.status_code, response.text)
            logger.warning("%s: attempt failed: %s", name, reason)
            raise ServeError(name, reason)
        return self._decode_json(response.text, name)

    async def amodel_call(self, session, sem: asyncio.Semaphore, messages: list, *, generate: bool = True,
                          cache_keys: list | None = None, ctxlens: list[int] | None = None,
                          gen_kwargs: dict | None = None, **kwargs) -> list:
        """One attempt of one request under `num_concurrent`; returns the parsed answers."""
        import aiohttp

        name = self._name_of(messages)
        async with sem:
            # Built once a connection is free, off the event loop: decoding and base64 take time.
            payload = await asyncio.to_thread(self._payload, messages, generate, gen_kwargs, kwargs)
            try:
                async with session.post(self.base_url, headers=self.header,
                                        **self._post_kwargs(payload, aio=True)) as response:
                    text = await response.text()
                    status = response.status
            except asyncio.TimeoutError:
                raise ServeError(name, f"no answer within timeout={self.timeout} s") from None
            except aiohttp.ClientError as e:
                raise ServeError(name, f"cannot reach {self.shown_url}: {type(e).__name__}: {self._redact(str(e))}") from None
        if status >= 400:
            reason = self._failure(status, text)
            logger.warning("%s: attempt failed: %s", name, reason)
            raise ServeError(name, reason)
        outputs = self._decode_json(text, name)
        if generate:
            answers = self.parse_generations(outputs=outputs, contexts=messages)
        else:
            answers = self.parse_logprobs(outputs=outputs, tokens=messages, ctxlens=ctxlens)
        return answers

    def _cache_answers(self, method: str, contexts: list, answers: list) -> None:
        """Cache each answer under its Instance's own args (audio included) as soon as it
        arrives, so that with --use_cache a rerun after a failure resumes from the answers that
        did arrive (lm-eval's own partial entries are keyed without the audio)."""
        for context, answer in zip(contexts, answers):
            for args in self._pending.get(self._context_key(context), Pending()).args:
                self.cache_hook.add_partial(method, args, answer)

    def get_model_info(self) -> dict:
        """Endpoint, model, cache identity and RTFx (audio seconds per wall-clock second, all
        requests in flight; per task under `rtfx_per_task`)."""
        info = {"base_url": self.shown_url, "model": self.model, "num_concurrent": self._concurrent,
                "model_identity": self.cache_identity(), "rtfx_clock": "wall", **self.rtfx.as_dict()}
        redacted = self._redacted_model_args()
        if redacted is not None:  # lm-eval merges this into the results' config over its own record
            info["model_args"] = redacted
        return info
