"""Serve-backed evaluation against a real `transformers serve` on 127.0.0.1 (issue 13).

One server per model for the module: the tiny Qwen2-Audio for `audio-chat-completions` and a tiny
Whisper for `audio-transcriptions`. Faults (429/503, a server that goes away, API keys) come from a
small proxy in front of the real server (`_fault_proxy.py`). Answers through the server must equal
the local classes' on the same checkpoint; the tasks' text prompt is the same for every document
(spoken MMLU is audio only, the ASR prompt is fixed), so distinct answers show the audio arrived.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from _fault_proxy import FaultProxy
from lm_eval_audio.files import tasks_dir
from lm_eval_audio.serve.launch import missing_serving_modules, transformers_serve
from test_librispeech import ls_root  # noqa: F401  (the LibriSpeech-layout fixture)

MISSING = missing_serving_modules()
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"the serving extra is not installed (missing {', '.join(MISSING)}): "
                          "pip install -e '.[serving]'")

LIMIT = 4
GEN = "max_gen_toks=16"
CHAT_TASKS = ["spoken_mmlu_seed", "librispeech_dev_clean_chat"]
ASR_TASK = "librispeech_dev_clean"
KEY = "sk-test-0123456789abcdef0123456789"


# -- servers ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chat_server(tiny_model_dir, tmp_path_factory):
    with transformers_serve(tiny_model_dir, tmp_path_factory.mktemp("serve-qwen") / "serve.log") as url:
        yield url


def _audio_sensitive_whisper(src: Path, out: Path, max_new_tokens: int) -> Path:
    """The tiny Whisper with its layers' weight matrices scaled x10, decoding English.

    At initialisation scale the random Whisper writes the same (mostly empty) text for every
    clip, which could not tell a delivered clip from a lost one; scaled, its transcripts follow
    the audio. transformers serve ignores the request's `language`, so the served checkpoint's
    generation config carries the language, task and length that local `--model whisper` forces.
    """
    import torch
    from transformers import WhisperForConditionalGeneration

    shutil.copytree(src, out)
    model = WhisperForConditionalGeneration.from_pretrained(src)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2 and ("layers" in name or "conv" in name):
                p.mul_(10.0)
    gen = model.generation_config
    gen.language, gen.task, gen.max_new_tokens = "en", "transcribe", max_new_tokens
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory) -> Path:
    from lm_eval_audio.tiny.whisper import build_tiny_whisper

    base = build_tiny_whisper(tmp_path_factory.mktemp("tiny-whisper") / "w")
    return _audio_sensitive_whisper(base, base.parent / "w-sharp", max_new_tokens=16)


@pytest.fixture(scope="module")
def asr_server(whisper_dir, tmp_path_factory):
    with transformers_serve(whisper_dir, tmp_path_factory.mktemp("serve-whisper") / "serve.log") as url:
        yield url


# -- runs ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data_env(test_data, ls_root, tmp_path_factory):  # noqa: F811
    """Metadata for the tasks and the speech cache of spoken MMLU (synthesised once, espeak)."""
    old = {k: os.environ.get(k) for k in ("LM_EVAL_AUDIO_TTS_CACHE", "LM_EVAL_AUDIO_SYNTH")}
    os.environ["LM_EVAL_AUDIO_TTS_CACHE"] = str(tmp_path_factory.mktemp("tts"))
    os.environ["LM_EVAL_AUDIO_SYNTH"] = "1"
    yield {"librispeech_dir": str(ls_root)}
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _evaluate(model: str, model_args: str, tasks: list[str], metadata: dict, **kw) -> dict:
    import lm_eval
    from lm_eval.tasks import TaskManager

    return lm_eval.simple_evaluate(
        model=model, model_args=model_args, tasks=tasks, limit=LIMIT, gen_kwargs=GEN, device="cpu",
        task_manager=TaskManager(include_defaults=False, include_path=str(tasks_dir()), metadata=metadata),
        log_samples=True, **kw)


def _answers(results: dict, task: str) -> list[str]:
    return [s["resps"][0][0] for s in sorted(results["samples"][task], key=lambda s: s["doc_id"])]


def _cached_answers(cache_dir: Path, prefix: str) -> list:
    """Every value in the request cache files `cache_dir/prefix*.db` (all identity tables)."""
    from sqlitedict import SqliteDict

    values = []
    for db_file in cache_dir.glob(f"{prefix}*.db"):
        for table in SqliteDict.get_tablenames(str(db_file)):
            with SqliteDict(str(db_file), tablename=table) as db:
                values += list(db.values())
    return values


def _chat_args(url: str, **extra) -> str:
    args = {"model": None, "base_url": f"{url}/v1/chat/completions", "send_stop": "false", **extra}
    return ",".join(f"{k}={v}" for k, v in args.items() if v is not None)


@pytest.fixture(scope="module")
def local_chat(tiny_model_dir, data_env) -> dict[str, list[str]]:
    out = _evaluate("qwen2audio", f"pretrained={tiny_model_dir}", CHAT_TASKS, data_env, apply_chat_template=True)
    return {t: _answers(out, t) for t in CHAT_TASKS}


@pytest.fixture(scope="module")
def local_asr(whisper_dir, data_env) -> list[str]:
    return _answers(_evaluate("whisper", f"pretrained={whisper_dir}", [ASR_TASK], data_env), ASR_TASK)


@pytest.fixture(scope="module")
def cli_chat(chat_server, tiny_model_dir, data_env, make_cli_env, tmp_path_factory) -> dict:
    """`lm_eval --model audio-chat-completions` through the CLI, num_concurrent=4."""
    tmp = tmp_path_factory.mktemp("cli")
    out = tmp / "out"
    cmd = [sys.executable, "-m", "lm_eval", "--model", "audio-chat-completions",
           "--model_args", _chat_args(chat_server, model=tiny_model_dir, num_concurrent=4),
           "--tasks", ",".join(CHAT_TASKS), "--apply_chat_template", "--limit", str(LIMIT), "--gen_kwargs", GEN,
           "--metadata", json.dumps(data_env), "--log_samples", "--output_path", str(out)]
    proc = subprocess.run(cmd, env=make_cli_env(tmp), capture_output=True, text=True, timeout=600, cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-4000:]
    (results_file,) = out.rglob("results_*.json")
    answers = {}
    for task in CHAT_TASKS:
        (samples,) = out.rglob(f"samples_{task}_*.jsonl")
        rows = sorted((json.loads(line) for line in samples.read_text().splitlines()), key=lambda s: s["doc_id"])
        answers[task] = [r["resps"][0][0] for r in rows]
    return {"answers": answers, "results": json.loads(results_file.read_text())}


# -- audio-chat-completions ------------------------------------------------------------------------
def test_cli_answers_equal_local_qwen2audio(cli_chat, local_chat):
    for task in CHAT_TASKS:
        assert cli_chat["answers"][task] == local_chat[task], task
        assert len(set(local_chat[task])) > 1, f"{task}: every clip got the same answer; the test could not see lost audio"
    results = cli_chat["results"]
    assert 0.0 <= results["results"]["spoken_mmlu_seed"]["exact_match,choice"] <= 1.0
    assert results["results"]["librispeech_dev_clean_chat"]["wer,transcript"] >= 0.0
    config = results["config"]
    assert config["rtfx_clock"] == "wall" and config["num_concurrent"] == 4 and config["rtfx"] > 0
    assert config["rtfx_clips"] == LIMIT * len(CHAT_TASKS)
    per_task = config["rtfx_per_task"]
    assert set(per_task) == set(CHAT_TASKS) and all(t["rtfx_clips"] == LIMIT and t["rtfx"] > 0 for t in per_task.values())


def test_one_connection_gives_the_same_answers_as_four(chat_server, tiny_model_dir, data_env, cli_chat):
    out = _evaluate("audio-chat-completions", _chat_args(chat_server, model=tiny_model_dir, num_concurrent=1),
                    CHAT_TASKS, data_env, apply_chat_template=True)
    for task in CHAT_TASKS:
        assert _answers(out, task) == cli_chat["answers"][task]


def test_server_error_stops_the_run_naming_the_doc(chat_server, tiny_model_dir, data_env, local_chat):
    # transformers serve 5.24 fails on `stop` for audio models (HTTP 500): the error says so,
    # after the retries, and names the document.
    from lm_eval_audio.serve.client import ServeError

    with pytest.raises(ServeError, match=r"librispeech_dev_clean_chat doc \d+: .*after 1 attempt\(s\): HTTP 500"):
        _evaluate("audio-chat-completions",
                  _chat_args(chat_server, model=tiny_model_dir, send_stop="true", max_retries=1),
                  ["librispeech_dev_clean_chat"], data_env, apply_chat_template=True)


def test_server_gone_mid_run_fails_names_the_doc_and_caches_only_answers(
        chat_server, tiny_model_dir, data_env, local_chat, tmp_path):
    from lm_eval_audio.serve.client import ServeError

    task = "librispeech_dev_clean_chat"
    cache = tmp_path / "cache" / "served"
    proxy = FaultProxy(chat_server, die_after=2)
    args = _chat_args(proxy.url, model=tiny_model_dir, num_concurrent=2, max_retries=2)
    with pytest.raises(ServeError, match=rf"{task} doc \d+: request to .* failed after 2 attempt\(s\): cannot reach"):
        _evaluate("audio-chat-completions", args, [task], data_env, apply_chat_template=True, use_cache=str(cache))
    cached = _cached_answers(cache.parent, "served")
    assert 1 <= len(cached) <= 2  # the two answers that arrived, nothing for the lost ones
    assert all(a in local_chat[task] for a in cached) and "" not in cached

    # The server is back: the rerun sends only what is missing and the audio is in the key
    # (every document has the same text, so a key without it would repeat one answer).
    proxy = FaultProxy(chat_server, port=proxy.port)
    out = _evaluate("audio-chat-completions", _chat_args(proxy.url, model=tiny_model_dir, num_concurrent=2),
                    [task], data_env, apply_chat_template=True, use_cache=str(cache))
    assert _answers(out, task) == local_chat[task]
    assert proxy.forwarded == LIMIT - len(cached)
    proxy.stop()
    # Another endpoint is another model to the cache: nothing is reused for it.
    proxy = FaultProxy(chat_server)
    _evaluate("audio-chat-completions", _chat_args(proxy.url, model=tiny_model_dir, num_concurrent=2),
              [task], data_env, apply_chat_template=True, use_cache=str(cache))
    assert proxy.forwarded == LIMIT
    proxy.stop()


def test_429_and_503_are_retried(chat_server, tiny_model_dir, data_env, local_chat):
    task = "spoken_mmlu_seed"
    proxy = FaultProxy(chat_server, faults=[429, 503])
    out = _evaluate("audio-chat-completions", _chat_args(proxy.url, model=tiny_model_dir, max_retries=3),
                    [task], data_env, apply_chat_template=True)
    assert proxy.faults_sent == 2 and proxy.forwarded == LIMIT
    assert _answers(out, task) == local_chat[task]
    proxy.stop()


def test_loglikelihood_names_the_missing_feature_and_the_generation_task(chat_server, tiny_model_dir, data_env):
    from lm_eval_audio.serve.client import ServeError, ServerFeatureMissing

    with pytest.raises(ServerFeatureMissing, match=r"logprobs.*prompt_logprobs=true.*--tasks spoken_mmlu_seed$"):
        _evaluate("audio-chat-completions", _chat_args(chat_server, model=tiny_model_dir),
                  ["spoken_mmlu_seed_mc"], data_env, apply_chat_template=True)
    # Asked anyway, transformers serve refuses vLLM's fields: a clear error, not a made-up score.
    with pytest.raises(ServeError, match=r"spoken_mmlu_seed_mc doc \d+: .*HTTP 422: .*Unexpected fields"):
        _evaluate("audio-chat-completions", _chat_args(chat_server, model=tiny_model_dir, prompt_logprobs="true",
                                                       max_retries=1),
                  ["spoken_mmlu_seed_mc"], data_env, apply_chat_template=True)


def test_prompt_logprobs_scores_equal_local_qwen2audio(tiny_model_dir, data_env):
    # No vLLM here (GPU only): a stand-in computes vLLM's prompt_logprobs format with transformers.
    from _fake_vllm import FakeVLLM

    task = "spoken_mmlu_seed_mc"
    local = _evaluate("qwen2audio", f"pretrained={tiny_model_dir}", [task], data_env, apply_chat_template=True)
    fake = FakeVLLM(tiny_model_dir)
    try:
        served = _evaluate("audio-chat-completions",
                           _chat_args(fake.url, model=tiny_model_dir, prompt_logprobs="true", num_concurrent=2),
                           [task], data_env, apply_chat_template=True)
    finally:
        fake.stop()
    assert fake.requests == 4 * LIMIT  # one request per (document, letter)

    def scores(out):
        return [[r[0] for r in s["resps"]] for s in sorted(out["samples"][task], key=lambda s: s["doc_id"])]

    for mine, theirs in zip(scores(served), scores(local)):
        assert [g for _, g in mine] == [g for _, g in theirs]
        assert max(abs(a - b) for (a, _), (b, _) in zip(mine, theirs)) < 1e-4
    assert served["results"][task]["acc,none"] == local["results"][task]["acc,none"]


# -- keys (both models) --------------------------------------------------------------------------
@pytest.fixture(params=["chat", "asr"])
def served(request, data_env):
    """(model, model_args for a base URL, task, extra simple_evaluate kwargs, local answers)."""
    if request.param == "chat":
        url, model_dir = request.getfixturevalue("chat_server"), request.getfixturevalue("tiny_model_dir")
        local = request.getfixturevalue("local_chat")["librispeech_dev_clean_chat"]
        return dict(model="audio-chat-completions", upstream=url, task="librispeech_dev_clean_chat",
                    args=lambda base, **kw: _chat_args(base, model=model_dir, **kw),
                    kw={"apply_chat_template": True}, local=local)
    url, model_dir = request.getfixturevalue("asr_server"), request.getfixturevalue("whisper_dir")
    return dict(model="audio-transcriptions", upstream=url, task=ASR_TASK,
                args=lambda base, **kw: ",".join([f"model={model_dir}", f"base_url={base}/v1"]
                                                 + [f"{k}={v}" for k, v in kw.items()]),
                kw={}, local=request.getfixturevalue("local_asr"))


def test_missing_or_wrong_key_is_a_clear_error_without_the_key(served, data_env, monkeypatch, caplog, capsys,
                                                               tmp_path):
    from lm_eval_audio.serve.client import ServeError

    proxy = FaultProxy(served["upstream"], require_key=KEY)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env with a key here
    with pytest.raises(ServeError, match=r"HTTP 401: the server wants an API key and none was sent: set OPENAI_API_KEY"):
        _evaluate(served["model"], served["args"](proxy.url, max_retries=1), [served["task"]], data_env, **served["kw"])

    wrong = "sk-wrong-9876543210fedcba9876543210"
    monkeypatch.setenv("OPENAI_API_KEY", wrong)
    with caplog.at_level(logging.DEBUG), pytest.raises(ServeError) as err:
        _evaluate(served["model"], served["args"](proxy.url, max_retries=2), [served["task"]], data_env, **served["kw"])
    message = str(err.value)
    assert "rejected the API key from OPENAI_API_KEY" in message and "after 2 attempt(s)" in message
    printed = message + caplog.text + "".join(capsys.readouterr())
    for fragment in (wrong, wrong[:8], wrong[-8:], wrong[4:16]):
        assert fragment not in printed
    assert proxy.auth_headers[-1] == f"Bearer {wrong}"  # it was sent, just never shown

    # The right key, from a variable the user names.
    monkeypatch.setenv("MY_SERVER_KEY", KEY)
    out = _evaluate(served["model"], served["args"](proxy.url, api_key_env="MY_SERVER_KEY"), [served["task"]],
                    data_env, **served["kw"])
    assert _answers(out, served["task"]) == served["local"]
    proxy.stop()


# -- audio-transcriptions ------------------------------------------------------------------------------
def test_transcriptions_equal_local_whisper_at_any_concurrency(asr_server, whisper_dir, data_env, local_asr):
    assert len(set(local_asr)) > 1 and all(local_asr)
    runs = {}
    for n in (1, 4):
        out = _evaluate("audio-transcriptions", f"model={whisper_dir},base_url={asr_server}/v1,num_concurrent={n}",
                        [ASR_TASK], data_env)
        runs[n] = _answers(out, ASR_TASK)
        config = out["config"]
        assert config["rtfx"] > 0 and config["rtfx_clock"] == "wall" and config["num_concurrent"] == n
        assert config["rtfx_clips"] == LIMIT and config["rtfx_per_task"][ASR_TASK]["rtfx_clips"] == LIMIT
        assert out["results"][ASR_TASK]["wer,none"] >= 0.0
    assert runs[1] == runs[4] == local_asr


def test_transcriptions_retry_cache_and_fail_naming_the_doc(asr_server, whisper_dir, data_env, local_asr, tmp_path):
    from lm_eval_audio.serve.client import ServeError

    cache = str(tmp_path / "cache" / "asr")
    proxy = FaultProxy(asr_server, faults=[503, 429])
    out = _evaluate("audio-transcriptions", f"model={whisper_dir},base_url={proxy.url}/v1,max_retries=3",
                    [ASR_TASK], data_env, use_cache=cache)
    assert _answers(out, ASR_TASK) == local_asr and proxy.faults_sent == 2
    proxy.stop()
    # A rerun is answered from the cache, keyed on each clip's content.
    proxy = FaultProxy(asr_server, port=proxy.port)
    out = _evaluate("audio-transcriptions", f"model={whisper_dir},base_url={proxy.url}/v1", [ASR_TASK], data_env,
                    use_cache=cache)
    assert _answers(out, ASR_TASK) == local_asr and proxy.forwarded == 0
    proxy.stop()

    # One connection (lm-eval's sequential path): the server goes after one answer; that answer
    # alone is cached (lm-eval writes its own copy too, under a key the lookups never use), and a
    # rerun asks only for the rest.
    proxy = FaultProxy(asr_server, die_after=1)
    cache = tmp_path / "cache2" / "asr"
    with pytest.raises(ServeError, match=rf"{ASR_TASK} doc \d+: request to .* failed after 2 attempt\(s\): cannot reach"):
        _evaluate("audio-transcriptions", f"model={whisper_dir},base_url={proxy.url}/v1,max_retries=2",
                  [ASR_TASK], data_env, use_cache=str(cache))
    cached = _cached_answers(cache.parent, "asr")
    assert len(set(cached)) == 1 and cached[0] in local_asr
    proxy = FaultProxy(asr_server, port=proxy.port)
    out = _evaluate("audio-transcriptions", f"model={whisper_dir},base_url={proxy.url}/v1", [ASR_TASK], data_env,
                    use_cache=str(cache))
    assert _answers(out, ASR_TASK) == local_asr and proxy.forwarded == LIMIT - 1
    proxy.stop()


# -- the benchmark's code path -----------------------------------------------------------------------
def test_serve_benchmark_quick_mode(data_env, make_cli_env, tmp_path):
    from conftest import REPO

    out = tmp_path / "bench.json"
    env = dict(make_cli_env(tmp_path), LM_EVAL_AUDIO_TTS_CACHE=os.environ["LM_EVAL_AUDIO_TTS_CACHE"])
    proc = subprocess.run([sys.executable, "-m", "bench.serve", "--quick", "--json", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cases = json.loads(out.read_text())["cases"]
    assert set(cases) == {"local qwen2audio, batch 1", "local qwen2audio, batch 8",
                          *(f"transformers serve, num_concurrent {n}" for n in (1, 4, 8))}
    assert all(c["answers_equal_local_b1"] == 4 for c in cases.values())
    assert "x vs local qwen2audio, batch 1" in proc.stdout
