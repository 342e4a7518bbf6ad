"""What identifies a row of the report: the model configuration a run evaluated, and how.

A row is (lm-eval model backend, checkpoint, adapter, mode, audio control) plus any other
model_args that can change scores, plus the run's protocol (chat template, system instruction,
few-shot, TTS setup: `protocol.Protocol`). Arguments that only decide how the work is executed
(device, batch size, ...) are left out, so the same configuration run on two machines is one row.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from lm_eval_audio.openai_client import redact_url
from lm_eval_audio.report.names import folder_name, model_name
from lm_eval_audio.report.protocol import Protocol

# model_args that change how a run executes but not what it computes.
EXECUTION_ONLY_ARGS = frozenset({
    "device", "batch_size", "max_batch_size", "parallelize", "device_map", "trust_remote_code",
    "num_workers", "compute_type_threads", "cpu_threads", "use_fast_tokenizer",
    "verify_batch",  # rescoring a sample alone checks the batched scores; it changes none (shown as a check)
})
CHECKPOINT_ARGS = ("pretrained", "model", "path", "engine")
ADAPTER_ARGS = ("peft", "lora", "adapter", "delta")
CONTROL_ARG = "audio_control"
NO_CONTROL = ("", "none")  # audio_control values that mean "the real audio"


@dataclass(frozen=True)
class ModelConfig:
    """One model configuration: the identity of a report row."""

    model: str  # lm-eval backend name: hf, qwen2audio, whisper, ...
    checkpoint: str
    adapter: str | None
    mode: str | None
    other_args: tuple[tuple[str, str], ...] = ()
    control: str | None = None  # audio_control of a control run (silence, shuffle); None: real audio
    protocol: Protocol = field(default_factory=Protocol)

    @classmethod
    def from_lm_eval(cls, model: str, model_args: Any, protocol: Protocol | None = None) -> "ModelConfig":
        """Build from a results file's `config.model` and `config.model_args` (dict or string)
        and the run's protocol."""
        if model_args is None:
            args: dict[str, Any] = {}
        elif isinstance(model_args, str):
            from lm_eval.utils import simple_parse_args_string

            args = simple_parse_args_string(model_args)
        elif isinstance(model_args, dict):
            args = dict(model_args)
        else:
            raise ValueError(f"model_args of {model!r} is neither a string nor a mapping: {model_args!r}")
        checkpoint = next((str(args.pop(k)) for k in CHECKPOINT_ARGS if args.get(k) is not None), "")
        adapter = next((str(args.pop(k)) for k in ADAPTER_ARGS if args.get(k) not in (None, "")), None)
        mode = args.pop("mode", None)
        control = args.pop(CONTROL_ARG, None)
        control = None if control is None or str(control).lower() in NO_CONTROL else str(control)
        # A key an endpoint URL carries (results written before it was redacted) is not shown.
        other = tuple(sorted((k, redact_url(str(v)) if k == "base_url" else str(v))
                             for k, v in args.items() if k not in EXECUTION_ONLY_ARGS))
        return cls(model=str(model), checkpoint=checkpoint, adapter=adapter,
                   mode=None if mode is None else str(mode), other_args=other, control=control,
                   protocol=protocol or Protocol())

    @property
    def sort_key(self) -> tuple:
        """Rows of one checkpoint together; base before adapters; a control right after its real run."""
        return (self.checkpoint, self.model, self.adapter or "", self.mode or "", self.other_args,
                self.protocol.summary, self.control or "")

    @property
    def base(self) -> "ModelConfig":
        """The same configuration without its adapter (the 'before' of a before/after view)."""
        return replace(self, adapter=None)

    @property
    def real(self) -> "ModelConfig":
        """The same configuration on the real audio (the run a control run is compared with)."""
        return replace(self, control=None)

    @property
    def model_key(self) -> tuple:
        """The model itself, ignoring mode and TTS: text and spoken runs of one model, made the
        same way, share this key (a text run has no TTS fields, its spoken twin has)."""
        return (self.model, self.checkpoint, self.adapter, self.other_args, self.control, self.protocol.run_key)

    @property
    def model_label(self) -> str:
        """`label` without the mode: the name of a model across its text and spoken runs."""
        return replace(self, mode=None).label

    @staticmethod
    def short(path: str | None) -> str:
        """A readable name for a checkpoint or adapter: hub ids stay, local paths keep their last part."""
        return folder_name(path)

    @property
    def name(self) -> str:
        """What a reader calls this configuration: the model's readable name (`Whisper tiny.en
        (CTranslate2)`), its adapter, mode and control; the other arguments are in `label`."""
        s = model_name(self.checkpoint, dict(self.other_args))
        if self.adapter:
            s += f" + adapter {self.short(self.adapter)}"
        if self.mode:
            s += f" [{self.mode}]"
        if self.control:
            s += f" {{control: {self.control}}}"
        return s

    @property
    def model_name(self) -> str:
        """`name` without the mode: the name of a model across its text and spoken runs."""
        return replace(self, mode=None).name

    @property
    def label(self) -> str:
        """One-line name for tables and plots."""
        s = f"{self.model}:{self.short(self.checkpoint)}"
        if self.adapter:
            s += f" +{self.short(self.adapter)}"
        if self.mode:
            s += f" [{self.mode}]"
        if self.other_args:
            s += " (" + ",".join(f"{k}={v}" for k, v in self.other_args) + ")"
        if self.control:
            s += f" {{control: {self.control}}}"
        return s

    @property
    def model_full_label(self) -> str:
        """`model_label` and the protocol: a model across its modes, unambiguous in a report."""
        return f"{self.model_label} · {self.protocol.summary}"

    @property
    def full_label(self) -> str:
        """`label` and the protocol: unique across the rows of a report."""
        return f"{self.label} · {self.protocol.summary}"



def protocol_differences(protocols: list[Protocol]) -> list[str]:
    """For each protocol, the readable parts in which it differs from the others of the list:
    'chat template' / 'no chat template' (its hash only beside another template), a system
    instruction, the shot count, the TTS fields whose values differ."""
    def chat(p: Protocol) -> str:
        if not p.chat_template:
            return "no chat template"
        several = len({q.chat_template for q in protocols if q.chat_template}) > 1
        return f"chat template {p.chat_template[:6]}" if several else "chat template"

    def system(p: Protocol) -> str:
        return f"system instruction {p.system_instruction[:6]}" if p.system_instruction else "no system instruction"

    def shots(p: Protocol) -> str:
        return "/".join(map(str, p.fewshot)) + "-shot" + (" multiturn" if p.fewshot_as_multiturn else "")

    def tts(p: Protocol) -> str:
        fields = dict(p.tts)
        if not fields:
            return "no TTS"
        differing = [k for k in keys if k in fields]
        if len(differing) < len(fields):
            return ", ".join(f"{k.split('.')[-1]}={fields[k]}" for k in differing)
        backend = next((v for k, v in fields.items() if k.endswith("backend")), None)
        return f"TTS {backend}" if backend else "TTS"

    all_tts = [dict(p.tts) for p in protocols]
    keys = sorted({k for t in all_tts for k in t if len({t2.get(k) for t2 in all_tts}) > 1})
    parts = [[f(p) for p in protocols] for f in (chat, system, shots)]
    parts = [col for col in parts if len(set(col)) > 1]
    told = [", ".join(col[i] for col in parts) for i in range(len(protocols))]
    if keys and len(set(told)) < len(told):  # the TTS setup only where nothing else tells them apart
        parts.append([tts(p) for p in protocols])
    return [", ".join(col[i] for col in parts) for i in range(len(protocols))]


def disambiguate(names: list[str], args: list[dict], protocols: list[Protocol]) -> list[str]:
    """`names` where equal ones get what tells them apart, and only that: the model arguments
    that differ, else the parts of the protocol that differ."""
    from collections import defaultdict

    groups: dict[str, list[int]] = defaultdict(list)
    for i, n in enumerate(names):
        groups[n].append(i)
    out = list(names)
    for name, idx in groups.items():
        if len(idx) < 2:
            continue
        keys = sorted({k for i in idx for k in args[i] if len({str(args[j].get(k)) for j in idx}) > 1})
        diffs = protocol_differences([protocols[i] for i in idx])
        for i, diff in zip(idx, diffs):
            extra = [f"{k}={args[i].get(k, '-')}" for k in keys] + ([diff] if diff else [])
            out[i] = name + (" · " + ", ".join(extra) if extra else "")
    return out


def distinct_names(configs) -> dict[ModelConfig, str]:
    """Each configuration's readable `name`, told apart from the others' where they read the same."""
    configs = list(dict.fromkeys(configs))
    names = disambiguate([c.name for c in configs], [dict(c.other_args) for c in configs],
                         [c.protocol for c in configs])
    return dict(zip(configs, names))


def comparison_names(comparisons) -> list[str]:
    """The model column of paired comparisons (`names.comparison_name`), told apart by the parts
    of the protocol that differ only where two lines would otherwise read the same."""
    from lm_eval_audio.report.names import comparison_name

    names = [comparison_name(c) for c in comparisons]
    keyed = [f"{n}\0{c.a.result.task}\0{c.b.result.task}\0{c.filter_b}" for n, c in zip(names, comparisons)]
    told = disambiguate(keyed, [{} for _ in comparisons], [c.b.config.protocol for c in comparisons])
    return [n + t[len(k):] for n, k, t in zip(names, keyed, told)]
