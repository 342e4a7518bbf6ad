"""The one OpenAI client of the package (speech synthesis and the LLM judge both use it).

The openai SDK does the HTTP work, including retries with exponential backoff and jitter on
429, 408/409, 5xx and connection errors (`max_retries`). The API key (`OPENAI_API_KEY`) and the
endpoint (`OPENAI_BASE_URL`, e.g. a proxy) come from the environment or a `.env` file, the same
way for both, so a key kept in `.env` never goes to the public endpoint when a proxy is set there
too. `redact` scrubs the key from every message raised or logged.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

KEY_ENV = "OPENAI_API_KEY"
BASE_URL_ENV = "OPENAI_BASE_URL"


class OpenAIKeyError(RuntimeError):
    """No API key was found; the message says where one goes."""


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
        raise OpenAIKeyError(f"no OpenAI API key: set {env_var} in the environment or in a .env file")
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


def make_client(*, max_retries: int, timeout: float, api_key: str | None = None):
    """(openai.OpenAI client, its key): key and endpoint found as above, the SDK's retry policy."""
    import openai

    key = api_key or find_api_key()
    return openai.OpenAI(api_key=key, base_url=find_base_url(), max_retries=max_retries, timeout=timeout), key
