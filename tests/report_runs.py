"""Real lm-eval output folders for the report's tests: the seed study's runs on tiny checkpoints.

The tasks are test-only YAMLs written to a temp `--include_path` folder, carrying the names and
metadata of the seed tasks (the contract with the lead: `item_key`, `text_twin`, `role`,
`audio_llm_task`, `evaluation_split`, `before_task`), over a handful of simple items: MMLU-like
questions with a tone clip as their "speech", LibriSpeech-like utterances, timbre-like clips.
The runs are real `lm_eval.simple_evaluate` calls saved by lm-eval's own `EvaluationTracker`,
as `lm_eval --output_path OUT --log_samples` saves them.

The `strict` and `choice` filters here are stand-ins for the package's: random tiny models
almost never write a letter, so these map each response to a letter (or leave it unanswered)
by a checksum of the response text and the item. Per-item outcomes then vary and depend on
what the model really generated, which is what the report's statistics need to be exercised.
The ASR task's filter does the same for transcripts: each reference word is kept or replaced
by a checksum of the model's response, so corpus WERs differ between models and utterances.

Documents of the spoken tasks come in a different order from their text twins (reversed) and
one item of each side is missing on the other, so pairing by `doc_id` would pair the wrong
questions: the tests check the report pairs by `mmlu_id`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

N_ITEMS = 14  # MMLU-like questions; the text tasks hold items 0..12, the spoken 1..13 (reversed)
N_UTTS = 10
N_CLIPS = 9

BACKBONE_SYSTEM = "Return ONLY the letter of the correct answer (A, B, C, or D)."
AUDIO_LLM_SYSTEM = "Give ONLY the letter of the correct answer (A, B, C, or D)."

_UTILS = '''\
import zlib

from lm_eval_audio.registration import register_components

register_components()  # these YAMLs use our metrics by name, as our own tasks' utils do

LETTERS = ("A", "B", "C", "D")


def _code(resp, key):
    return zlib.crc32((str(resp) + "|" + str(key)).encode("utf-8"))


def _letters(resps, docs, modulus):
    out = []
    for rs, doc in zip(resps, docs):
        r = rs[0].strip()
        if r in LETTERS:
            out.append(r)
            continue
        c = _code(r, doc.get("mmlu_id"))
        out.append("[unanswered]" if c % modulus == 0 else LETTERS[(c // modulus) % 4])
    return out


def strict(resps, docs):
    return _letters(resps, docs, 3)


def choice(resps, docs):
    return _letters(resps, docs, 7)


def digit(resps, docs):
    out = []
    for rs, doc in zip(resps, docs):
        r = rs[0].strip()
        out.append(r if r in ("0", "1", "2") else str(_code(r, doc["clip_id"]) % 3))
    return out


def label_index(resps, docs):
    return [str(_code(rs[0], "label/" + doc["clip_id"]) % 3) for rs, doc in zip(resps, docs)]


def asr(resps, docs):
    # Keep each reference word, or replace it by a wrong one, by a checksum of the response.
    out = []
    for rs, doc in zip(resps, docs):
        words = doc["text"].split()
        out.append(" ".join(w if _code(rs[0], doc["id"] + "/" + str(j)) % 3 else "SPOKE"
                            for j, w in enumerate(words)))
    return out


def process_letter(doc, results):
    pred, gold = results[0], LETTERS[doc["answer"]]
    answered = pred in LETTERS
    return {"exact_match": float(pred == gold), "exact_match_answered": [int(pred == gold), int(answered)],
            "extraction_failure": float(not answered)}


def answered_accuracy(items):
    items = list(items)
    answered = sum(a for _, a in items)
    return sum(c for c, _ in items) / answered if answered else 0.0


def process_digit(doc, results):
    return {"exact_match": float(results[0] == str(doc["label"]))}
'''

_DATA = """\
dataset_path: json
dataset_kwargs:
  data_files:
    test: {docs}
test_split: test
"""

_LETTER_GEN = _DATA + """\
task: {name}
output_type: generate_until
description: "{description}"
doc_to_text: "{text}"
doc_to_target: "{{{{['A','B','C','D'][answer]}}}}"
{audio}
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 4
  do_sample: false
filter_list:
  - name: strict
    filter:
      - function: custom
        filter_fn: !function utils.strict
  - name: choice
    filter:
      - function: custom
        filter_fn: !function utils.choice
process_results: !function utils.process_letter
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
  - metric: exact_match_answered
    aggregation: !function utils.answered_accuracy
    higher_is_better: true
  - metric: extraction_failure
    aggregation: mean
    higher_is_better: false
metadata:
  version: 1.0
  item_key: mmlu_id
{meta}
"""

_LETTER_MC = _DATA + """\
task: {name}
output_type: multiple_choice
doc_to_text: "{text}"
doc_to_choice: ["A", "B", "C", "D"]
doc_to_target: answer
{audio}
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
  item_key: mmlu_id
{meta}
"""

_TIMBRE = _DATA + """\
task: {name}
output_type: generate_until
doc_to_text: "{text}"
doc_to_target: "{{{{label}}}}"
doc_to_audio: audio
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 3
  do_sample: false
filter_list:
  - name: strict
    filter:
      - function: custom
        filter_fn: !function utils.digit
  - name: label_index
    filter:
      - function: custom
        filter_fn: !function utils.label_index
process_results: !function utils.process_digit
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
  item_key: clip_id
{meta}
"""

_ASR = _DATA + """\
task: {name}
output_type: generate_until
doc_to_text: "Transcribe the audio:"
doc_to_target: text
doc_to_audio: audio
generation_kwargs:
  until: ["\\n\\n"]
  max_gen_toks: 8
  do_sample: false
filter_list:
  - name: none
    filter:
      - function: custom
        filter_fn: !function utils.asr
metric_list:
  - metric: wer
    aggregation: wer
    higher_is_better: false
metadata:
  version: 1.0
  item_key: id
"""

_WORDS = "the quick brown fox jumps over the lazy dog while printer prints history of".split()


def _tone(folder: Path, name: str, freq: float, silent: bool = False) -> str:
    import soundfile as sf

    t = np.arange(8000) / 16000
    wave = np.zeros_like(t) if silent else 0.3 * np.sin(2 * np.pi * freq * t)
    path = folder / f"{name}.wav"
    sf.write(path, wave.astype(np.float32), 16000)
    return str(path)


def _jsonl(path: Path, docs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def _meta(**kv: str) -> str:
    return "".join(f"  {k}: {v}\n" for k, v in kv.items())


def make_tasks(folder: Path, silent: bool = False) -> Path:
    """The seed tasks' stand-ins in `folder` (a fresh --include_path). `silent`: every clip is zeros
    of the same length (the documents are otherwise identical), for the control run."""
    folder.mkdir(parents=True, exist_ok=True)
    clips = folder / "clips"
    clips.mkdir(exist_ok=True)
    (folder / "utils.py").write_text(_UTILS)
    rng = np.random.default_rng(0)
    items = []
    for i in range(N_ITEMS):
        items.append({"mmlu_id": f"anatomy/{i}", "question": f"Which letter is right for question {i}?",
                      "choices": ["one", "two", "three", "four"], "answer": int(rng.integers(4)),
                      "subject": "anatomy"})
    text_docs = items[:-1]
    spoken_docs = [dict(d, speech_text=f"Question: {d['question']}",
                        audio=[{"path": _tone(clips, f"q{i}", 220 + 37 * i, silent)}])
                   for i, d in enumerate(items)][1:][::-1]
    text = _jsonl(folder / "mmlu_text.jsonl", text_docs)
    spoken = _jsonl(folder / "mmlu_spoken.jsonl", spoken_docs)
    q = "Question: {{question}}\\\\nA. {{choices[0]}}\\\\nB. {{choices[1]}}\\\\nAnswer:"
    gen = {
        "mmlu_seed_backbone": (text, BACKBONE_SYSTEM, q, "",
                               _meta(role="backbone", audio_llm_task="mmlu_seed")),
        "mmlu_seed": (text, AUDIO_LLM_SYSTEM, q, "", ""),
        "spoken_mmlu_seed": (spoken, "", "", "doc_to_audio: audio", _meta(text_twin="mmlu_seed")),
    }
    for name, (docs, description, prompt, audio, meta) in gen.items():
        (folder / f"{name}.yaml").write_text(_LETTER_GEN.format(
            name=name, docs=docs, description=description, text=prompt, audio=audio, meta=meta))
    mc = {"mmlu_seed_mc": (text, q, "", ""),
          "spoken_mmlu_seed_mc": (spoken, "Answer:", "doc_to_audio: audio", _meta(text_twin="mmlu_seed_mc"))}
    for name, (docs, prompt, audio, meta) in mc.items():
        (folder / f"{name}.yaml").write_text(_LETTER_MC.format(name=name, docs=docs, text=prompt,
                                                               audio=audio, meta=meta))

    splits = {}
    for split, n in (("train", N_CLIPS), ("validation", N_CLIPS - 3)):
        docs = [{"clip_id": f"{split}/{k}", "label": int(k % 3),
                 "audio": [{"path": _tone(clips, f"timbre_{split}_{k}", 300 + 55 * k, silent)}]} for k in range(n)]
        splits[split] = _jsonl(folder / f"timbre_{split}.jsonl", docs)
    base_prompt = "Classify the timbre range: answer 0 for narrow, 1 for moderate and 2 for wide."
    ft_prompt = "Classify the timbre range in one of 3 numbers: 0 narrow, 1 moderate, 2 wide."
    timbre = {
        "timbre_range_seed": ("train", base_prompt, {}),
        "timbre_range_seed_ft": ("train", ft_prompt, {"before_task": "timbre_range_seed"}),
        "timbre_range_seed_validation": ("validation", base_prompt, {}),
        "timbre_range_seed_ft_validation": ("validation", ft_prompt,
                                            {"before_task": "timbre_range_seed_validation"}),
    }
    for name, (split, prompt, extra) in timbre.items():
        (folder / f"{name}.yaml").write_text(_TIMBRE.format(
            name=name, docs=splits[split], text=prompt, meta=_meta(evaluation_split=split, **extra)))

    utts = [{"id": f"1272-128104-{k:04d}",
             "text": " ".join(_WORDS[(3 * k + j) % len(_WORDS)] for j in range(3 + k % 4)).upper(),
             "audio": [{"path": _tone(clips, f"utt{k}", 180 + 45 * k, silent)}]} for k in range(N_UTTS)]
    asr = _jsonl(folder / "librispeech.jsonl", utts)
    (folder / "librispeech_dev_clean_200.yaml").write_text(_ASR.format(name="librispeech_dev_clean_200", docs=asr)
                                                           .replace("dataset_path", "task: librispeech_dev_clean_200\ndataset_path", 1))
    return folder


def make_adapter(model_dir: Path, out: Path) -> Path:
    """A random (non-zero) LoRA adapter on the language model's attention, saved with PEFT."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2AudioForConditionalGeneration

    torch.manual_seed(1)
    model = Qwen2AudioForConditionalGeneration.from_pretrained(model_dir)
    cfg = LoraConfig(r=4, lora_alpha=16, init_lora_weights=False,
                     target_modules=r".*language_model.*\.(q_proj|v_proj)")
    get_peft_model(model, cfg).save_pretrained(out)
    # Its trainer state, as a training run writes it into the checkpoint of the step it keeps
    # (the seed's checkpoint-37 of a 150-step run, loss logged every 5 steps).
    from transformers import TrainerState

    state = TrainerState(global_step=37, max_steps=150, num_train_epochs=3, epoch=0.74,
                         log_history=[{"step": s, "loss": round(2.0 / (1 + s / 10), 4)} for s in range(5, 40, 5)])
    state.save_to_json(str(out / "trainer_state.json"))
    return out


def run_lm_eval(out: Path, model: str, model_args: str, tasks: list[str], task_manager,
                chat: bool = True) -> Path:
    """One run saved as `lm_eval --output_path OUT --log_samples` saves it; returns the results file.

    In-process: the CLI indexes all of lm-eval's task files on every start (15-40 s). The saving
    calls are the CLI's own (lm_eval/_cli/run.py)."""
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker

    tracker = EvaluationTracker(output_path=str(out))
    results = simple_evaluate(model=model, model_args=model_args, tasks=tasks, device="cpu", batch_size=8,
                              log_samples=True, evaluation_tracker=tracker, task_manager=task_manager,
                              apply_chat_template=chat)
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    for task_name in results["configs"]:
        tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
    return max(out.rglob("results_*.json"), key=lambda p: p.stat().st_mtime)


def tag_control(results: Path, control: str) -> None:
    """Record `audio_control=<control>` in a run's model_args, as the model class records it.

    The run itself heard silent clips (tasks built with `silent=True`); the model argument that
    does this inside the model class is another branch's work, so the test writes the field the
    model will write. Nothing else in the file changes.
    """
    data = json.loads(results.read_text())
    data["config"]["model_args"] += f",audio_control={control}"
    results.write_text(json.dumps(data, indent=2))


@dataclass(frozen=True)
class SeedRuns:
    """Where the runs are, and which results file holds which experiment."""

    root: Path
    files: dict[str, Path]


def make_seed_runs(root: Path, tiny_model_dir: Path) -> SeedRuns:
    """Every experiment of the seed study's preset, plus a control run and a no-chat-template run."""
    from lm_eval.tasks import TaskManager

    from lm_eval_audio.tiny.whisper import build_tiny_whisper
    from lm_eval_audio.tiny.qwen2_audio import build_text_backbone  # the tiny checkpoint's own LM as the backbone

    tasks = make_tasks(root / "tasks")
    silent = make_tasks(root / "tasks_silent", silent=True)
    backbone = build_text_backbone(tiny_model_dir, root / "text-lm")
    whisper = build_tiny_whisper(root / "whisper")
    adapter = make_adapter(tiny_model_dir, root / "adapter")
    tm = TaskManager(include_defaults=False, include_path=str(tasks))
    tm_silent = TaskManager(include_defaults=False, include_path=str(silent))
    q = f"pretrained={tiny_model_dir},dtype=float32"
    runs = root / "runs"
    plan = {
        "backbone": ("hf", f"pretrained={backbone},dtype=float32", ["mmlu_seed_backbone"], tm, True),
        "text": ("qwen2audio", q + ",mode=text", ["mmlu_seed", "mmlu_seed_mc"], tm, True),
        "text_nochat": ("qwen2audio", q + ",mode=text", ["mmlu_seed"], tm, False),
        "speech": ("qwen2audio", q + ",mode=audio", ["spoken_mmlu_seed", "spoken_mmlu_seed_mc"], tm, True),
        "control": ("qwen2audio", q + ",mode=audio", ["spoken_mmlu_seed"], tm_silent, True),
        "whisper": ("whisper", f"pretrained={whisper}", ["librispeech_dev_clean_200"], tm, False),
        "asr": ("qwen2audio", q, ["librispeech_dev_clean_200"], tm, False),
        "timbre_base": ("qwen2audio", q, ["timbre_range_seed", "timbre_range_seed_validation"], tm, True),
        "timbre_adapter": ("qwen2audio", q + f",peft={adapter}",
                           ["timbre_range_seed_ft", "timbre_range_seed_ft_validation"], tm, True),
        "asr_adapter": ("qwen2audio", q + f",peft={adapter}", ["librispeech_dev_clean_200"], tm, False),
    }
    files = {}
    for name, (model, args, task_names, manager, chat) in plan.items():
        files[name] = run_lm_eval(runs / name, model, args, task_names, manager, chat)
    tag_control(files["control"], "silence")
    return SeedRuns(runs, files)
