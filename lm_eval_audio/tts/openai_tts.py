"""Speech through OpenAI's speech endpoint (the seed study used gpt-4o-mini-tts, voice alloy).

The client, its retry policy, the key and the endpoint (environment or `.env`) are
`lm_eval_audio.openai_client`'s, shared with the judge; the key is scrubbed from every message.
"""

from __future__ import annotations

import logging

from lm_eval_audio.openai_client import make_client, redact, redact_url, url_secrets

logger = logging.getLogger(__name__)

class OpenAITTSError(RuntimeError):
    """The speech endpoint failed for one text; the message never contains the API key."""


class OpenAISpeech:
    """A client for the speech endpoint with the SDK's retry/backoff policy."""

    def __init__(self, *, model: str, voice: str, instructions: str | None, audio_format: str = "flac",
                 max_retries: int = 6, timeout: float = 60.0, api_key: str | None = None) -> None:
        self.model = model
        self.voice = voice
        self.instructions = instructions
        self.audio_format = audio_format
        self._client, self._key = make_client(max_retries=max_retries, timeout=timeout, api_key=api_key)

    @property
    def base_url(self) -> str:
        """The endpoint actually used (OPENAI_BASE_URL or the SDK's default), without the
        credentials its URL may carry."""
        return redact_url(str(self._client.base_url))

    def synthesize(self, text: str) -> bytes:
        """The clip's bytes (`audio_format`: flac or mp3) of `text` spoken; raises OpenAITTSError
        (key-free message) on failure."""
        import openai

        kwargs = dict(model=self.model, voice=self.voice, input=text, response_format=self.audio_format)
        if self.instructions:
            kwargs["instructions"] = self.instructions
        try:
            response = self._client.audio.speech.create(**kwargs)
            return response.read()
        except openai.OpenAIError as e:
            status = getattr(e, "status_code", None)
            detail = redact(str(e), self._key, *url_secrets(str(self._client.base_url)))
            raise OpenAITTSError(
                f"speech endpoint failed{f' (HTTP {status})' if status else ''} for text "
                f"{text[:60]!r}: {detail}"
            ) from None  # the chained SDK exception may carry request headers
