"""The openai TTS backend and the LLM judge against a local HTTP server (127.0.0.1 only)."""

from __future__ import annotations

import io
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import soundfile as sf

from lm_eval_audio.audio import decode_audio
from lm_eval_audio.filters.choice import UNMAPPED, ChoiceFilter, judge_rate
from lm_eval_audio.tts import Synthesizer, SynthesisError, TTSConfig
from lm_eval_audio.openai_client import OpenAIKeyError, find_api_key, find_base_url
from lm_eval_audio.tts.openai_tts import OpenAITTSError

KEY = "sk-test-0123456789abcdefSECRET"


def _flac(seconds: float = 0.5) -> bytes:
    t = np.arange(int(24000 * seconds)) / 24000
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 24000, format="FLAC")
    return buf.getvalue()


class FakeOpenAI:
    """Answers /v1/audio/speech and /v1/chat/completions; `script` queues error statuses."""

    def __init__(self):
        self.requests: list[dict] = []
        self.script: list[int] = []  # statuses to answer before succeeding
        self.speech_body: bytes = _flac()
        self.judge_reply = "C"
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                if outer.script:
                    status = outer.script.pop(0)
                    payload = json.dumps({"error": {"message": f"status {status} for key {KEY}", "type": "x"}}).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("retry-after-ms", "10")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if self.path.endswith("/audio/speech"):
                    payload, ctype = outer.speech_body, "audio/flac"
                elif self.path.endswith("/chat/completions"):
                    payload = json.dumps({
                        "id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": outer.judge_reply}}],
                    }).encode()
                    ctype = "application/json"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def fake(monkeypatch):
    server = FakeOpenAI()
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    yield server
    server.server.shutdown()


def test_speech_with_seed_settings_and_429_then_success(fake, tmp_path, caplog):
    fake.script = [429, 503]
    synth = Synthesizer(TTSConfig(backend="openai", cache_dir=tmp_path))
    with caplog.at_level(logging.DEBUG):
        path = synth.clip("What is two plus two? A. three. B. four.")
    assert len(fake.requests) == 3  # 429, 503, then the clip
    body = fake.requests[-1]["body"]
    assert body["model"] == "gpt-4o-mini-tts" and body["voice"] == "alloy"
    assert body["instructions"] == "Speak like reading a question with 4 alternatives in an exam."
    assert body["input"] == "What is two plus two? A. three. B. four." and body["response_format"] == "flac"
    assert fake.requests[-1]["auth"] == f"Bearer {KEY}"
    assert decode_audio(str(path)).shape == (8000,)  # 0.5 s at 16 kHz after resampling
    assert KEY not in caplog.text
    # cached: a second synthesizer (a rerun) makes no request
    again = Synthesizer(TTSConfig(backend="openai", cache_dir=tmp_path))
    assert again.clip("What is two plus two? A. three. B. four.") == path
    assert len(fake.requests) == 3 and again.stats.made == 0


def test_errors_never_show_the_key(fake, tmp_path):
    fake.script = [401]
    synth = Synthesizer(TTSConfig(backend="openai", cache_dir=tmp_path, max_retries=0))
    with pytest.raises(OpenAITTSError) as err:
        synth.clip("hello")
    assert "HTTP 401" in str(err.value) and "'hello'" in str(err.value)
    assert KEY not in str(err.value) and KEY[:16] not in str(err.value)
    assert err.value.__cause__ is None and synth.stats.failed == 1
    assert not list(tmp_path.rglob("*.flac"))


def test_junk_audio_is_not_cached(fake, tmp_path):
    fake.speech_body = b"<html>not audio</html>"
    synth = Synthesizer(TTSConfig(backend="openai", cache_dir=tmp_path))
    with pytest.raises(SynthesisError, match="unreadable audio"):
        synth.clip("hello")
    assert not list(tmp_path.rglob("*.flac"))


def test_key_from_dotenv(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OpenAIKeyError, match="no OpenAI API key"):
        find_api_key()
    (tmp_path / ".env").write_text(f"OTHER=1\nOPENAI_API_KEY={KEY}\n")
    assert find_api_key() == KEY


def test_base_url_from_dotenv_like_the_key(fake, tmp_path, monkeypatch):
    """A proxy set in .env next to the key is where the key goes, never the public endpoint."""
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.chdir(tmp_path)
    assert find_base_url() is None
    (tmp_path / ".env").write_text(f"OPENAI_API_KEY={KEY}\nOPENAI_BASE_URL={fake.url}\n")
    assert find_base_url() == fake.url
    monkeypatch.setenv("LM_EVAL_AUDIO_TTS_CACHE", str(tmp_path / "tts"))
    monkeypatch.setenv("LM_EVAL_AUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LM_EVAL_AUDIO_JUDGE", "gpt-4o-mini")
    fake.judge_reply = "C"
    doc = {"question": "Q?", "choices": ["a", "b", "c", "d"], "mmlu_id": "x/1"}
    assert ChoiceFilter().apply([["my pick is the third"]], [doc]) == [["C"]]
    assert [r["auth"] for r in fake.requests] == [f"Bearer {KEY}"]  # reached the .env endpoint
    synth = Synthesizer(TTSConfig(backend="openai", cache_dir=tmp_path / "clips"))
    synth.clip("hello")
    assert len(fake.requests) == 2 and fake.requests[-1]["path"].endswith("/audio/speech")


def test_judge_maps_only_unmapped_answers_and_is_cached(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("LM_EVAL_AUDIO_TTS_CACHE", str(tmp_path / "tts"))
    monkeypatch.setenv("LM_EVAL_AUDIO_CACHE", str(tmp_path / "cache"))
    doc = {"question": "Capital of France?", "choices": ["London", "Paris", "Rome", "Berlin"], "mmlu_id": "geo/1"}
    monkeypatch.delenv("LM_EVAL_AUDIO_JUDGE", raising=False)
    assert ChoiceFilter().judge is None  # off by default
    monkeypatch.setenv("LM_EVAL_AUDIO_JUDGE", "gpt-4o-mini")
    fake.script = [429]
    fake.judge_reply = "B"
    out = ChoiceFilter().apply([["The answer is D."], ["The city of lights, of course"]], [doc, doc])
    assert out == [["D"], ["B"]]
    assert [o[0].method for o in out] == ["statement", "judge"]
    chats = [r for r in fake.requests if r["path"].endswith("/chat/completions")]
    assert len(chats) == 2 and chats[-1]["body"]["model"] == "gpt-4o-mini"  # one 429, one answer
    assert "The city of lights" in chats[-1]["body"]["messages"][1]["content"]
    assert judge_rate(["B"], out[1]) == 1.0
    # cached verdict: no new request; a NONE verdict stays unmapped
    ChoiceFilter().apply([["The city of lights, of course"]], [doc])
    assert len([r for r in fake.requests if r["path"].endswith("/chat/completions")]) == 2
    fake.judge_reply = "NONE"
    assert ChoiceFilter().apply([["I refuse"]], [doc]) == [[UNMAPPED]]


def test_seed_judge_protocol_sends_the_seeds_request_for_every_nonempty_answer(fake, tmp_path, monkeypatch):
    from lm_eval_audio.data.seed_mmlu import JUDGE_SYSTEM, judge_prompt
    from lm_eval_audio.filters.judge import judge_settings

    monkeypatch.setenv("LM_EVAL_AUDIO_TTS_CACHE", str(tmp_path / "tts"))
    monkeypatch.setenv("LM_EVAL_AUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LM_EVAL_AUDIO_JUDGE", "gpt-4o-mini")
    doc = {"question": "Capital of France?\n", "choices": ["London", "Paris", "Rome", "Berlin"], "mmlu_id": "geo/1"}
    fake.judge_reply = "B"
    filt = ChoiceFilter(judge_protocol="seed")
    out = filt.apply([["The answer is D."], [""], ["BLANK please", "NA"]], [doc, doc, doc])
    chats = [r["body"] for r in fake.requests if r["path"].endswith("/chat/completions")]
    # Every non-empty answer goes to the judge (the seed's cleaning), even one the rules would
    # map; empty and missing ones ("", "NA" as pandas reads it) never do.
    assert [c["messages"] for c in chats] == [
        [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": judge_prompt(doc, a)}]
        for a in ("The answer is D.", "BLANK please")]
    assert chats[0]["messages"][1]["content"].endswith(
        "alternatives: A. London\nB. Paris\nC. Rome\nD. Berlin\nAnswer:\nmodel answer: The answer is D.")
    # The seed's request: the API's default sampling, nothing but model and messages.
    assert all(sorted(c) == ["messages", "model"] for c in chats)
    assert out == [["B"], [UNMAPPED], ["B", UNMAPPED]] and judge_rate(["B"], out[0]) == 1.0
    assert [o.method for o in out[1] + out[2]] == ["empty", "judge", "empty"]
    # The reply is kept only when it is exactly a letter.
    for reply in ("BLANK", "A.", " C", "c"):
        fake.judge_reply = reply
        assert ChoiceFilter(judge_protocol="seed").apply([[f"no idea {reply}"]], [doc]) == [[UNMAPPED]]
    settings = judge_settings()["judge_request_settings"]
    assert settings == {"ours": {"temperature": 0, "max_tokens": 3},
                        "seed": "API defaults (no temperature, no max_tokens)"}
    with pytest.raises(ValueError, match="unknown judge protocol 'x'"):
        ChoiceFilter(judge_protocol="x")


def test_our_judge_protocol_is_deterministic_and_reads_replies_leniently(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("LM_EVAL_AUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LM_EVAL_AUDIO_JUDGE", "gpt-4o-mini")
    doc = {"question": "Capital of France?", "choices": ["London", "Paris", "Rome", "Berlin"], "mmlu_id": "geo/1"}
    fake.judge_reply = " (B)."
    assert ChoiceFilter().apply([["the city of lights"], [""]], [doc, doc]) == [["B"], [UNMAPPED]]
    (chat,) = [r["body"] for r in fake.requests if r["path"].endswith("/chat/completions")]
    assert chat["temperature"] == 0 and chat["max_tokens"] == 3


def test_seed_judge_replays_a_recorded_reply_cache_without_network(fake, tmp_path, monkeypatch):
    from lm_eval_audio.filters.judge import JudgeError

    monkeypatch.setenv("LM_EVAL_AUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LM_EVAL_AUDIO_JUDGE", "gpt-4o-mini")
    doc = {"question": "Capital of France?\n", "choices": ["London", "Paris", "Rome", "Berlin"], "mmlu_id": "geo/1"}
    answers = [["Paris"], ["Rome, I think"], ["it is A."], [""]]
    replies = iter(["B", "C", "A."])  # recorded once, in request order
    fake.judge_reply = next(replies)

    recorded = []
    for doc_answers in answers:
        recorded.append(ChoiceFilter(judge_protocol="seed").apply([doc_answers], [doc])[0][0])
        fake.judge_reply = next(replies, "B")
    assert recorded == ["B", "C", UNMAPPED, UNMAPPED]
    sent = len([r for r in fake.requests if r["path"].endswith("/chat/completions")])
    assert sent == 3
    # No network now: the endpoint's server is gone, and there is no key. The same answers come
    # back from the cache recorded for that endpoint.
    fake.server.shutdown()
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.chdir(tmp_path)  # no .env with a key either
    replay = ChoiceFilter(judge_protocol="seed").apply(answers, [doc] * 4)
    assert [r[0] for r in replay] == recorded and [r[0].method for r in replay][:2] == ["judge", "judge"]
    with pytest.raises((JudgeError, OpenAIKeyError)):  # an answer never recorded needs the endpoint
        ChoiceFilter(judge_protocol="seed").apply([["London"]], [doc])


def test_seed_speech_is_requested_as_mp3_and_cached_as_such(fake, tmp_path):
    t = np.arange(24000) / 24000
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 24000, format="MP3",
             subtype="MPEG_LAYER_III")
    fake.speech_body = buf.getvalue()
    mp3 = Synthesizer(TTSConfig(backend="openai", audio_format="mp3", cache_dir=tmp_path))
    path = mp3.clip("What is two plus two?")
    assert fake.requests[-1]["body"]["response_format"] == "mp3"  # what the seed's default request got
    assert path.suffix == ".mp3" and path.read_bytes() == fake.speech_body
    assert mp3.describe()["audio_format"] == "mp3" and abs(len(decode_audio(str(path))) - 16000) < 1200
    fake.speech_body = _flac()
    flac = Synthesizer(TTSConfig(backend="openai", cache_dir=tmp_path)).clip("What is two plus two?")
    assert flac.suffix == ".flac" and flac != path  # another format is another clip
    with pytest.raises(ValueError, match="unknown openai audio format 'ogg'"):
        TTSConfig(backend="openai", audio_format="ogg")
    with pytest.raises(ValueError, match="espeak backend takes no audio format"):
        TTSConfig(backend="espeak", audio_format="mp3")


def test_judge_verdicts_are_cached_per_endpoint(fake, tmp_path, monkeypatch):
    # Two endpoints serving one model name: the second must be asked, not handed the first's verdict.
    from lm_eval_audio.filters.judge import judge_settings

    monkeypatch.setenv("LM_EVAL_AUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LM_EVAL_AUDIO_JUDGE", "gpt-4o-mini")
    doc = {"question": "Capital of France?", "choices": ["London", "Paris", "Rome", "Berlin"], "mmlu_id": "geo/1"}
    answer = [["The city of lights, of course"]]
    fake.judge_reply = "B"
    assert ChoiceFilter().apply(answer, [doc]) == [["B"]]
    other = FakeOpenAI()
    try:
        other.judge_reply = "C"
        monkeypatch.setenv("OPENAI_BASE_URL", other.url)
        assert ChoiceFilter().apply(answer, [doc]) == [["C"]]
        assert len(other.requests) == 1
        assert judge_settings()["judge_endpoint"] == other.url
    finally:
        other.server.shutdown()
    monkeypatch.setenv("OPENAI_BASE_URL", fake.url)
    assert ChoiceFilter().apply(answer, [doc]) == [["B"]]  # the first endpoint's verdict, from the cache
    assert len([r for r in fake.requests if r["path"].endswith("/chat/completions")]) == 1


def test_a_key_in_the_judge_base_url_reaches_neither_results_nor_cache(fake, tmp_path, monkeypatch):
    from lm_eval_audio.filters.judge import judge_settings

    monkeypatch.setenv("LM_EVAL_AUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LM_EVAL_AUDIO_JUDGE", "gpt-4o-mini")
    host = fake.url.split("://")[1]
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://user:URLSECRET1@{host}")
    doc = {"question": "Capital of France?", "choices": ["London", "Paris", "Rome", "Berlin"], "mmlu_id": "geo/1"}
    fake.judge_reply = "B"
    assert ChoiceFilter().apply([["The city of lights"]], [doc]) == [["B"]]
    settings = json.dumps(judge_settings())
    assert "URLSECRET" not in settings and f'"http://[redacted]@{host}"' in settings
    records = list((tmp_path / "cache" / "judge").rglob("*.json"))
    assert len(records) == 1 and "URLSECRET" not in records[0].read_text()
    # Another key on the same endpoint: the same verdicts (the identity is the endpoint, not the key).
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://user:OTHERKEY@{host}")
    assert ChoiceFilter().apply([["The city of lights"]], [doc]) == [["B"]]
    assert len([r for r in fake.requests if r["path"].endswith("/chat/completions")]) == 1
