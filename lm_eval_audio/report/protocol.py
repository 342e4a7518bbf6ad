"""How a run was made, beyond the model: the part of a report row's identity that is not a model_arg.

Two runs of the same model that differ in any of these fields never merge into one row
(issue 12, point 12):
- chat template: lm-eval's `chat_template_sha` (None: no template applied);
- system instruction: `system_instruction_sha` (`--system_instruction`);
- few-shot: the set of `n-shot` values of the run's tasks, and `fewshot_as_multiturn` when
  any task is few-shot (the flag changes nothing at zero shots, so it does not split rows then);
- TTS setup of the spoken tasks: what their loaders recorded in `metadata.protocol.tts`
  (backend, model, voice, instructions, rate, engine: the settings in effect, whether they
  came from the environment or from `--metadata tts_*`); for results without that record,
  every task-metadata and `config` entry whose key starts with `tts`;
- the audio control (`audio_control=silence|shuffle`) is a model argument; `ModelConfig`
  keeps it as its own field so a control run sits beside its real run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TTS_PREFIX = "tts"


def _flat(prefix: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [kv for k, v in sorted(value.items()) for kv in _flat(f"{prefix}.{k}", v)]
    return [(prefix, str(value))]


def tts_setup(config: dict[str, Any], task_configs: dict[str, dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    """The TTS fields of a run: the recorded `metadata.protocol.tts` of its tasks, else the `tts*`
    keys of its `config` and of its tasks' metadata, flattened."""
    recorded: dict[str, str] = {}
    for tcfg in task_configs.values():
        proto = ((tcfg or {}).get("metadata") or {}).get("protocol")
        if isinstance(proto, dict) and isinstance(proto.get("tts"), dict):
            recorded.update(_flat("tts", proto["tts"]))
    if recorded:
        return tuple(sorted(recorded.items()))
    found: dict[str, str] = {}
    for key, value in (config or {}).items():
        if key.lower().startswith(TTS_PREFIX):
            found.update(_flat(key, value))
    for tcfg in task_configs.values():
        meta = (tcfg or {}).get("metadata") or {}
        if isinstance(meta, dict):
            for key, value in meta.items():
                if key.lower().startswith(TTS_PREFIX):
                    found.update(_flat(key, value))
    return tuple(sorted(found.items()))


@dataclass(frozen=True)
class Protocol:
    """The run-level protocol of one results file (see the module docstring)."""

    chat_template: str | None = None  # sha of the applied template; None: no template
    system_instruction: str | None = None  # sha of --system_instruction
    fewshot: tuple[int, ...] = (0,)
    fewshot_as_multiturn: bool | None = None  # only recorded when a task is few-shot
    tts: tuple[tuple[str, str], ...] = ()  # () when the run has no TTS fields (e.g. text tasks)

    @classmethod
    def from_results(cls, data: dict[str, Any]) -> "Protocol":
        """Read from a results JSON (lm-eval 0.4.13 writes these keys at its top level)."""
        shots = sorted({int(v) for v in (data.get("n-shot") or {}).values() if isinstance(v, (int, float))}) or [0]
        multiturn = data.get("fewshot_as_multiturn") if any(shots) else None
        return cls(
            chat_template=data.get("chat_template_sha") or None,
            system_instruction=data.get("system_instruction_sha") or None,
            fewshot=tuple(shots),
            fewshot_as_multiturn=None if multiturn is None else bool(multiturn),
            tts=tts_setup(data.get("config") or {}, data.get("configs") or {}),
        )

    @property
    def run_key(self) -> tuple:
        """Everything but the TTS setup: runs of one model with equal run keys may be paired
        (text twin against spoken task) even though only the spoken run has TTS fields."""
        return (self.chat_template, self.system_instruction, self.fewshot, self.fewshot_as_multiturn)

    def without_tts(self) -> "Protocol":
        """The same protocol with no TTS fields."""
        return Protocol(self.chat_template, self.system_instruction, self.fewshot, self.fewshot_as_multiturn)

    @property
    def summary(self) -> str:
        """Short text for tables: 'chat 27d3d4, 0-shot', 'no chat template, 5-shot multiturn, tts voice=alloy'."""
        parts = [f"chat {self.chat_template[:6]}" if self.chat_template else "no chat template"]
        if self.system_instruction:
            parts.append(f"system {self.system_instruction[:6]}")
        shots = "/".join(str(s) for s in self.fewshot) + "-shot"
        if self.fewshot_as_multiturn:
            shots += " multiturn"
        parts.append(shots)
        if self.tts:
            parts.append("tts " + " ".join(f"{_short_key(k)}={_short_value(v)}" for k, v in self.tts))
        return ", ".join(parts)

    @property
    def tts_text(self) -> str:
        """Every TTS field in full ('' when there are none)."""
        return "; ".join(f"{k}={v}" for k, v in self.tts)


def _short_key(key: str) -> str:
    return key.split(".")[-1].removeprefix("tts_")


def _short_value(value: str, limit: int = 24) -> str:
    # Long values (TTS instructions) would swamp a table cell: a stable short hash stands for them.
    if len(value) <= limit:
        return value
    import hashlib

    return "#" + hashlib.sha1(value.encode("utf-8")).hexdigest()[:6]
