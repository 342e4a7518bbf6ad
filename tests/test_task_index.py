"""The TaskManager our runs build: our tasks without indexing lm-eval's own, a caller's folder
overriding one of ours."""

from __future__ import annotations

from lm_eval_audio.task_index import task_manager


def test_our_tasks_load_without_indexing_lm_evals_own():
    tm = task_manager(["timbre_range_seed_ft", "spoken_mmlu"])
    assert {"timbre_range_seed_ft", "spoken_mmlu"} <= set(tm.all_tasks)
    assert "hellaswag" not in tm.all_tasks  # lm-eval's ~15k files were not read


def test_a_callers_folder_overrides_a_task_of_ours(tmp_path):
    (tmp_path / "mine.yaml").write_text(
        "task: timbre_range_seed_ft\ndataset_path: json\ndataset_kwargs:\n  data_files: x.jsonl\n"
        "output_type: generate_until\ntest_split: train\ndoc_to_text: q\ndoc_to_target: a\n")
    tm = task_manager(["timbre_range_seed_ft"], include_path=[str(tmp_path)])
    assert tm.task_index["timbre_range_seed_ft"].yaml_path == tmp_path / "mine.yaml"
