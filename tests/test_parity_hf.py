"""On text-only requests qwen2audio scores exactly like lm-eval's own `hf` model on the same LM."""

from __future__ import annotations

import textwrap

import pytest


@pytest.fixture(scope="module")
def text_lm_dir(tiny_model_dir, tmp_path_factory):
    """The tiny checkpoint's language model saved as a plain Qwen2 causal LM."""
    from lm_eval_audio.tiny.qwen2_audio import build_text_backbone

    return build_text_backbone(tiny_model_dir, tmp_path_factory.mktemp("text-lm"))


@pytest.fixture(scope="module")
def text_tasks(test_data, tmp_path_factory):
    """MMLU multiple choice (lm-eval's mmlu prompt) and a rolling-perplexity task, on local files."""
    folder = tmp_path_factory.mktemp("text-tasks")
    csv = test_data / "mmlu" / "test" / "anatomy_test.csv"
    (folder / "mmlu_anatomy_local.yaml").write_text(textwrap.dedent(f"""
        task: mmlu_anatomy_local
        dataset_path: csv
        dataset_kwargs:
          data_files: {{test: "{csv}"}}
          column_names: [question, A, B, C, D, answer]
        test_split: test
        output_type: multiple_choice
        doc_to_text: "{{{{question.strip()}}}}\\nA. {{{{A}}}}\\nB. {{{{B}}}}\\nC. {{{{C}}}}\\nD. {{{{D}}}}\\nAnswer:"
        doc_to_choice: ["A", "B", "C", "D"]
        doc_to_target: "{{{{['A', 'B', 'C', 'D'].index(answer)}}}}"
        metric_list:
          - metric: acc
    """))
    transcripts = test_data / "speech" / "ljspeech" / "transcripts.psv"
    (folder / "lj_perplexity.yaml").write_text(textwrap.dedent(f"""
        task: lj_perplexity
        dataset_path: csv
        dataset_kwargs:
          data_files: {{test: "{transcripts}"}}
          column_names: [id, text]
          delimiter: "|"
        test_split: test
        output_type: loglikelihood_rolling
        doc_to_text: ""
        doc_to_target: "{{{{text}}}}"
        metric_list:
          - metric: word_perplexity
    """))
    return folder


def _per_sample_scores(model, model_args, tasks_dir):
    import lm_eval
    from lm_eval.tasks import TaskManager

    out = lm_eval.simple_evaluate(
        model=model,
        model_args=model_args,
        tasks=["mmlu_anatomy_local", "lj_perplexity"],
        task_manager=TaskManager(include_path=str(tasks_dir)),
        limit=6,
        log_samples=True,
        batch_size=3,
        device="cpu",
    )
    scores = {}
    for task, samples in out["samples"].items():
        for s in samples:
            scores[(task, s["doc_id"])] = [r[0] if isinstance(r, (list, tuple)) else r for r in s["filtered_resps"]]
    return scores, out["results"]


def test_text_loglikelihoods_equal_hf_model(tiny_model_dir, text_lm_dir, text_tasks):
    ours, our_results = _per_sample_scores("qwen2audio", f"pretrained={tiny_model_dir}", text_tasks)
    theirs, their_results = _per_sample_scores("hf", f"pretrained={text_lm_dir}", text_tasks)
    assert ours.keys() == theirs.keys() and len(ours) == 12
    for key in ours:
        for a, b in zip(ours[key], theirs[key], strict=True):
            assert float(a) == pytest.approx(float(b), abs=1e-4), key
    assert our_results["mmlu_anatomy_local"]["acc,none"] == their_results["mmlu_anatomy_local"]["acc,none"]
    assert our_results["lj_perplexity"]["word_perplexity,none"] == pytest.approx(
        their_results["lj_perplexity"]["word_perplexity,none"], rel=1e-4
    )
