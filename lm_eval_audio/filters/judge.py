"""Optional LLM judge for free-form multiple-choice answers (the seed used gpt-4o-mini).

Off by default. `LM_EVAL_AUDIO_JUDGE=<chat model>` turns it on for the `choice_letter`
filter. Two protocols: "ours" asks only about the answers the filter's rules cannot map, with
our prompt, deterministic (temperature 0, 3 tokens), its reply read leniently ("(B).");
"seed" (the seed tasks' setting) is the seed study's cleaning: every non-empty answer (empty or
missing answers, as the seed's pandas CSV read them, are never sent), the seed's exact prompt
(`lm_eval_audio.data.seed_mmlu.judge_prompt`) and request (the API's default sampling: no
temperature, no max_tokens), and the reply kept only when it is exactly one letter ("A." or
" C" stay unmapped, as the seed's `isin` check left them).
The share of answers it decided is reported as the `judge_rate` metric, so its use is visible
in every result file.
Verdicts are cached on disk by (endpoint, model, prompt version, question, answer): a rerun asks
nothing, and two endpoints serving one model name never share a verdict. The endpoint enters the
key, the results and the cache record without any credential its URL carries (`redact_url`).
The openai SDK retries with backoff on 429/5xx; the key and `OPENAI_BASE_URL` come from the
environment or a `.env` (`openai_client.py`, shared with speech synthesis) and the key never
appears in messages.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from lm_eval_audio.files import atomic_write_bytes, cache_root

logger = logging.getLogger(__name__)

ENV_JUDGE = "LM_EVAL_AUDIO_JUDGE"
PROTOCOLS = ("ours", "seed")
PROMPT_VERSION = 1
_OFF = {"", "0", "off", "false", "no", "none"}
# What each protocol's request sets beyond model and messages; the seed set nothing.
REQUEST_SETTINGS: dict[str, dict] = {"ours": {"temperature": 0, "max_tokens": 3}, "seed": {}}
LETTERS = ("A", "B", "C", "D")

SYSTEM = (
    "You grade answers to multiple-choice questions. Given a question with options A-D and a "
    "student's answer, reply with the single letter of the option the answer chose, or NONE if "
    "it chose no option, several options, or refused. Reply with one token: A, B, C, D or NONE."
)


class JudgeError(RuntimeError):
    """The judge endpoint failed; the message names the item and never the API key."""


@dataclass
class JudgeConfig:
    """Which chat model judges, and where its verdicts are cached."""

    model: str = "gpt-4o-mini"
    protocol: str = "ours"
    cache_dir: Path = field(default_factory=lambda: cache_root() / "judge")
    max_retries: int = 6
    timeout: float = 60.0


# The openai SDK's endpoint when OPENAI_BASE_URL is unset.
DEFAULT_ENDPOINT = "https://api.openai.com/v1"


def judge_endpoint() -> str:
    """The endpoint the judge asks (`OPENAI_BASE_URL` from the environment or `.env`, else the
    SDK's default), without the credentials its URL may carry."""
    from lm_eval_audio.openai_client import find_base_url, redact_url

    return redact_url(find_base_url() or DEFAULT_ENDPOINT).rstrip("/")


def judge_settings() -> dict[str, str | int | None]:
    """The judge that `choice_letter` filters use unless their task sets `judge:` (that setting
    is in the task's config), for the results file. How often it decided is each task's
    `judge_rate` metric."""
    value = os.environ.get(ENV_JUDGE, "").strip()
    model = None if value.lower() in _OFF else value
    requests = {p: settings or "API defaults (no temperature, no max_tokens)" for p, settings in REQUEST_SETTINGS.items()}
    return {"judge_model": model, "judge_endpoint": judge_endpoint() if model else None,
            "judge_prompt_version": PROMPT_VERSION if model else None,
            "judge_request_settings": requests if model else None}


def seed_missing(answers: list) -> list[bool]:
    """Which answers the seed never sent to its judge: those its pandas CSV read back as missing.

    The seed's answers went through `DataFrame.to_csv` and `read_csv` with pandas' defaults
    before cleaning, so an empty answer, and one pandas reads as a missing value ("NA", "None",
    "null", "nan", ...), was empty. Done with pandas itself, so the reading is pandas'.
    """
    import io

    import pandas as pd

    if not answers:
        return []
    buf = io.StringIO()
    # The index column keeps every row a non-blank line (read_csv skips blank ones).
    pd.DataFrame({"response": [a if isinstance(a, str) else None for a in answers]}).to_csv(buf)
    buf.seek(0)
    read = pd.read_csv(buf, dtype=str, index_col=0)["response"]
    if len(read) != len(answers):
        raise AssertionError(f"CSV round trip of {len(answers)} answers read back {len(read)}")
    return [bool(pd.isna(v)) for v in read]


def judge_from_setting(setting: str | None, protocol: str = "ours") -> "Judge | None":
    """The judge a filter should use: `setting` (a model name, or "off"), else the environment."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown judge protocol {protocol!r}; choose from {PROTOCOLS}")
    value = setting if setting is not None else os.environ.get(ENV_JUDGE, "")
    if str(value).strip().lower() in _OFF:
        return None
    judge = Judge(JudgeConfig(model=str(value).strip(), protocol=protocol))
    which = "every answer (the seed's cleaning)" if protocol == "seed" else "answers the rules cannot map"
    logger.warning("LLM judge %s is on for %s (see judge_rate)", judge.config.model, which)
    return judge


def _messages(doc: dict, answer: str, protocol: str) -> list[dict]:
    if protocol == "seed":
        from lm_eval_audio.data.seed_mmlu import JUDGE_SYSTEM, judge_prompt

        return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": judge_prompt(doc, answer)}]
    from lm_eval_audio.data.mmlu import question_block

    user = f"Question:\n{question_block(doc)}\n\nStudent's answer:\n{answer.strip()}"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


class Judge:
    """Asks a chat model which option a free-form answer chose; cached."""

    def __init__(self, config: JudgeConfig | None = None) -> None:
        self.config = config or JudgeConfig()
        self._client = None
        self._key = ""
        self._endpoint: str | None = None

    @property
    def sees_every_answer(self) -> bool:
        """Whether the judge reads every answer (the seed's cleaning) or only unmapped ones."""
        return self.config.protocol == "seed"

    @property
    def endpoint(self) -> str:
        """Where the verdicts come from (`judge_endpoint`), read once per judge."""
        if self._endpoint is None:
            self._endpoint = judge_endpoint()
        return self._endpoint

    def _cache_path(self, messages: list[dict]) -> Path:
        digest = hashlib.sha256(
            json.dumps([self.endpoint, self.config.model, PROMPT_VERSION, messages]).encode("utf-8")
        ).hexdigest()
        return Path(self.config.cache_dir) / digest[:2] / f"{digest}.json"

    def _ask(self, messages: list[dict], name: str) -> str:
        import openai

        from lm_eval_audio.openai_client import find_base_url, make_client, redact, url_secrets

        if self._client is None:
            self._client, self._key = make_client(max_retries=self.config.max_retries, timeout=self.config.timeout)
        try:
            completion = self._client.chat.completions.create(
                model=self.config.model,
                messages=messages,
                **REQUEST_SETTINGS[self.config.protocol],
            )
        except openai.OpenAIError as e:
            status = getattr(e, "status_code", None)
            raise JudgeError(f"judge {self.config.model} failed{f' (HTTP {status})' if status else ''} "
                             f"on {name}: {redact(str(e), self._key, *url_secrets(find_base_url()))}") from None
        return completion.choices[0].message.content or ""

    def decide(self, doc: dict, answer: str) -> str | None:
        """The letter the judge reads in `answer`, or None when it finds no single option."""
        messages = _messages(doc, answer, self.config.protocol)
        path = self._cache_path(messages)
        if path.is_file():
            reply = json.loads(path.read_text(encoding="utf-8"))["reply"]
        else:
            name = f"MMLU item {doc.get('mmlu_id', '?')}"
            reply = self._ask(messages, name)
            record = {"endpoint": self.endpoint, "model": self.config.model, "prompt_version": PROMPT_VERSION,
                      "messages": messages, "reply": reply}
            atomic_write_bytes(path, json.dumps(record, ensure_ascii=False).encode("utf-8"))
        if self.sees_every_answer:  # the seed's `isin(["A", "B", "C", "D"])` on the raw reply
            return reply if reply in LETTERS else None
        # Our reply reading: one letter, maybe wrapped; nothing else (NONE, BLANK) counts.
        m = re.fullmatch(r"\s*\(?([ABCD])\)?\.?\s*", reply)
        return m.group(1) if m else None
