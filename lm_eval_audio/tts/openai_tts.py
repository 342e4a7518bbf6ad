"""Speech through OpenAI's speech endpoint (the seed study used gpt-4o-mini-tts, voice alloy).

The openai SDK does the HTTP work, including retries with exponential backoff and jitter on
429, 408/409, 5xx and connection errors (`max_retries`). The API key (`OPENAI_API_KEY`) and the
endpoint (`OPENAI_BASE_URL`, e.g. a proxy) come from the environment or a `.env` file, the same
way for both, so a key kept in `.env` never goes to the public endpoint when a proxy is set there
too. The key is scrubbed from every message we raise or log.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

KEY_ENV = "OPENAI_API_KEY"
BASE_URL_ENV = "OPENAI_BASE_URL"


class OpenAITTSError(RuntimeError):
    """The speech endpoint failed for one text; the message never contains the API key."""


def _setting(name: str, dotenv_dirs: list[Path] | None) -> str:
    value = os.environ.get(name, "").strip()
    if value:
        return value
    from dotenv import dotenv_values

    for folder in dotenv_dirs or [Path.cwd()]:
        env_file = Path(folder) / ".env"
        if env_file.is_file():
            value = (dotenv_values(env_file).get(name) or "").strip()
            if value:
                logger.debug("%s read from %s", name, env_file)
                return value
    return ""


def find_api_key(dotenv_dirs: list[Path] | None = None, *, env_var: str = KEY_ENV, required: bool = True) -> str:
    """`env_var` (default `OPENAI_API_KEY`) from the environment, else from a `.env` in the working
    directory. With `required=False` a missing key gives "" (local servers need none)."""
    key = _setting(env_var, dotenv_dirs)
    if not key and required:
        raise OpenAITTSError(f"no OpenAI API key: set {env_var} in the environment or in a .env file")
    return key


def find_base_url(dotenv_dirs: list[Path] | None = None) -> str | None:
    """`OPENAI_BASE_URL` from the environment, else from a `.env` (as the key); None: the SDK's default."""
    return _setting(BASE_URL_ENV, dotenv_dirs) or None


def redact(message: str, secret: str) -> str:
    """Remove `secret` (and its longer fragments) from a message."""
    if not secret:
        return message
    out = message.replace(secret, "[redacted]")
    # Servers echo keys partially ("sk-abc...wxyz"); strip any 8+ character fragment of it.
    for size in (16, 12, 8):
        for i in range(0, max(len(secret) - size + 1, 0)):
            frag = secret[i : i + size]
            if frag in out:
                out = out.replace(frag, "[redacted]")
    return out


class OpenAISpeech:
    """A client for the speech endpoint with the SDK's retry/backoff policy."""

    def __init__(self, *, model: str, voice: str, instructions: str | None,
                 max_retries: int = 6, timeout: float = 60.0, api_key: str | None = None) -> None:
        import openai

        self.model = model
        self.voice = voice
        self.instructions = instructions
        self._key = api_key or find_api_key()
        self._client = openai.OpenAI(api_key=self._key, base_url=find_base_url(), max_retries=max_retries,
                                     timeout=timeout)

    @property
    def base_url(self) -> str:
        """The endpoint actually used (OPENAI_BASE_URL or the SDK's default)."""
        return str(self._client.base_url)

    def synthesize(self, text: str) -> bytes:
        """FLAC bytes of `text` spoken; raises OpenAITTSError (key-free message) on failure."""
        import openai

        kwargs = dict(model=self.model, voice=self.voice, input=text, response_format="flac")
        if self.instructions:
            kwargs["instructions"] = self.instructions
        try:
            response = self._client.audio.speech.create(**kwargs)
            return response.read()
        except openai.OpenAIError as e:
            status = getattr(e, "status_code", None)
            detail = redact(str(e), self._key)
            raise OpenAITTSError(
                f"speech endpoint failed{f' (HTTP {status})' if status else ''} for text "
                f"{text[:60]!r}: {detail}"
            ) from None  # the chained SDK exception may carry request headers
