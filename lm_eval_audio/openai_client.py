"""The one OpenAI client of the package (speech synthesis and the LLM judge both use it).

The openai SDK does the HTTP work, including retries with exponential backoff and jitter on
429, 408/409, 5xx and connection errors (`max_retries`). The API key (`OPENAI_API_KEY`) and the
endpoint (`OPENAI_BASE_URL`, e.g. a proxy) come from the environment or a `.env` file, the same
way for both, so a key kept in `.env` never goes to the public endpoint when a proxy is set there
too. `redact` scrubs the key from every message raised or logged; `redact_url` removes the
credentials an endpoint URL may carry itself (`https://user:KEY@host/v1`, `?api-key=...`) before
the URL goes into results, cache keys or messages.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit, urlunsplit

logger = logging.getLogger(__name__)

KEY_ENV = "OPENAI_API_KEY"
BASE_URL_ENV = "OPENAI_BASE_URL"
REDACTED = "[redacted]"
# Query parameters that carry credentials (Azure's `api-key`, `key=`, `token=`, SAS `sig=`, ...).
_SECRET_PARAM = re.compile(r"key|token|secret|passw|sig|auth|credential", re.IGNORECASE)


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


def redact(message: str, *secrets: str) -> str:
    """Remove each of `secrets` (and its longer fragments) from a message."""
    out = message
    for secret in secrets:
        if not secret:
            continue
        out = out.replace(secret, REDACTED)
        # Servers echo keys partially ("sk-abc...wxyz"); strip any 8+ character fragment of it.
        for size in (16, 12, 8):
            for i in range(0, max(len(secret) - size + 1, 0)):
                frag = secret[i : i + size]
                if frag in out:
                    out = out.replace(frag, REDACTED)
    return out


def _query_pairs(query: str) -> list[tuple[str, str, str]]:
    # (name, "=" or "", value) as written: a secret is matched and replaced in its raw (encoded) form.
    return [pair.partition("=") for pair in query.split("&") if pair]


def url_secrets(url: str | None) -> list[str]:
    """The credentials an endpoint URL carries, as written in it: its user information
    (`https://user:KEY@host`) and the values of query parameters named like a credential
    (`api-key`, `token`, `sig`, ...)."""
    if not url:
        return []
    parts = urlsplit(url)
    found = [parts.netloc.rpartition("@")[0]] if "@" in parts.netloc else []
    found += [v for k, _, v in _query_pairs(parts.query) if v and _SECRET_PARAM.search(k)]
    return [f for f in found if f]


def redact_url(url: str | None) -> str | None:
    """`url` with its credentials (`url_secrets`) replaced by [redacted]; the rest (scheme, host,
    path, other query parameters) stays, so two endpoints stay apart and one endpoint reached
    with two keys is one endpoint."""
    if not url:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = "&".join(k + eq + (REDACTED if v and _SECRET_PARAM.search(k) else v)
                     for k, eq, v in _query_pairs(parts.query))
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def make_client(*, max_retries: int, timeout: float, api_key: str | None = None):
    """(openai.OpenAI client, its key): key and endpoint found as above, the SDK's retry policy."""
    import openai

    key = api_key or find_api_key()
    return openai.OpenAI(api_key=key, base_url=find_base_url(), max_retries=max_retries, timeout=timeout), key
