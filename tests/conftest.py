"""Shared fixtures. Everything is offline: tiny checkpoints are built here, data comes from
tests/data (small real files shipped with the repository, see its README)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "tests" / "data"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Qwen2-Audio checkpoint, built once per test session."""
    from lm_eval_audio.tiny.qwen2_audio import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-qwen2audio"), size="tiny")


@pytest.fixture(scope="session")
def arch_checkpoint(tmp_path_factory, tiny_model_dir):
    """`arch_checkpoint(model_type)`: that architecture's tiny checkpoint, built once per session
    on first use (every test of every architecture shares it)."""
    from lm_eval_audio.tiny.archs import build_arch

    built = {"qwen2_audio": tiny_model_dir}
    root = tmp_path_factory.mktemp("archs")

    def get(arch: str) -> Path:
        if arch not in built:
            built[arch] = build_arch(root / arch, arch)
        return built[arch]

    return get


@pytest.fixture(scope="session")
def test_data() -> Path:
    """The real data shipped in tests/data: an MMLU prefix copy with an index of the full test
    split, LJ Speech clips, the seed protocol notes (`tools/make_test_data.py` builds it)."""
    return TEST_DATA


def offline_env(tmp_path: Path) -> dict:
    """Environment for running `lm_eval` / `lm-eval-audio` in a subprocess, offline."""
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_HOME=str(tmp_path / "hf_home"), TOKENIZERS_PARALLELISM="false")
    return env


@pytest.fixture(scope="session")
def make_cli_env():
    """`offline_env` for fixtures wider than one test."""
    return offline_env


@pytest.fixture
def cli_env(tmp_path) -> dict:
    """Environment for running `lm_eval` / `lm-eval-audio` in a subprocess, offline."""
    return offline_env(tmp_path)
