"""A key carried by an endpoint URL never reaches results, cache identities or messages."""

from __future__ import annotations

import json

import pytest

from lm_eval_audio.models.audio_chat import AudioChatCompletions
from lm_eval_audio.models.audio_transcriptions import AudioTranscriptions
from lm_eval_audio.openai_client import redact_url, url_secrets
from lm_eval_audio.report.model_config import ModelConfig


@pytest.mark.parametrize("url, shown, secrets", [
    ("https://user:KEY123@host.example/v1", "https://[redacted]@host.example/v1", ["user:KEY123"]),
    ("https://host/v1?api-key=S3CRET&api-version=2024-01-01", "https://host/v1?api-key=[redacted]&api-version=2024-01-01",
     ["S3CRET"]),
    ("https://host/v1?sig=a%2Fb&token=t0k", "https://host/v1?sig=[redacted]&token=[redacted]", ["a%2Fb", "t0k"]),
    ("http://127.0.0.1:8000/v1/chat/completions", "http://127.0.0.1:8000/v1/chat/completions", []),
    ("https://host/v1?stream", "https://host/v1?stream", []),
])
def test_url_credentials_are_found_and_redacted(url, shown, secrets):
    assert redact_url(url) == shown and url_secrets(url) == secrets


@pytest.mark.parametrize("cls", [AudioChatCompletions, AudioTranscriptions])
@pytest.mark.parametrize("url", ["https://user:SECRETKEY1@host.example/v1", "https://host.example/v1?api-key=SECRETKEY1"])
def test_a_key_in_base_url_stays_out_of_results_and_identity(cls, url):
    args = f"model=whisper-1,base_url={url},num_concurrent=2"
    lm = cls.create_from_arg_string(args, {"batch_size": 1})
    info = lm.get_model_info()
    assert "SECRETKEY" not in json.dumps(info)
    # lm-eval writes model_args verbatim, then merges this info over it: the record is redacted.
    assert info["model_args"] == args.replace(url, redact_url(url))
    assert info["base_url"].startswith(redact_url(url))
    assert "SECRETKEY" not in lm._redact(f"cannot reach {lm.base_url}: refused")
    # The identity is the endpoint: another key, the same cached answers; another host, not.
    other_key = cls.create_from_arg_string(args.replace("SECRETKEY1", "SECRETKEY2"), {"batch_size": 1})
    other_host = cls.create_from_arg_string(args.replace("host.example", "other.example"), {"batch_size": 1})
    assert lm.cache_identity() == other_key.cache_identity() != other_host.cache_identity()
    as_dict = cls.create_from_arg_obj({"model": "whisper-1", "base_url": url}, {"batch_size": 1})
    assert as_dict.get_model_info()["model_args"] == {"model": "whisper-1", "base_url": redact_url(url)}
    # A report row of a results file written before this shows no key either.
    config = ModelConfig.from_lm_eval(cls.__name__, args)
    assert "SECRETKEY" not in repr(config)


def test_a_plain_base_url_leaves_lm_evals_record_alone():
    lm = AudioChatCompletions.create_from_arg_string("model=m,base_url=http://127.0.0.1:8000/v1", {"batch_size": 1})
    info = lm.get_model_info()
    assert "model_args" not in info and info["base_url"] == "http://127.0.0.1:8000/v1/chat/completions"


def test_served_models_key_file_clips_on_content_before_the_cache_looks(tmp_path):
    # The start-up hook calls see_requests before lm-eval's cache hashes the arguments.
    import numpy as np
    import soundfile as sf
    from lm_eval.api.instance import Instance

    from lm_eval_audio.audio import file_digest

    wav = tmp_path / "a.wav"
    sf.write(wav, np.full(800, 0.25, np.float32), 16000, subtype="FLOAT")
    lm = AudioChatCompletions.create_from_arg_string("model=m,base_url=http://127.0.0.1:8000/v1", {"batch_size": 1})
    req = Instance("generate_until", {}, ("Q", {"until": []}, {"audio": [str(wav)]}), 0, ("t", 0, 1))
    lm.see_requests([req])
    assert req.args[2]["audio"] == [{"path": str(wav), "sha256": file_digest(wav)}]
