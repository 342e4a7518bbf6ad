"""The TaskManager our runs build: our tasks without indexing lm-eval's own, a caller's folder
overriding one of ours."""

from __future__ import annotations

import pytest

from lm_eval_audio.files import tasks_dir
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


def test_a_yaml_path_loads_without_indexing_lm_evals_own(tmp_path):
    """lm-eval takes a task YAML's path as a task spec; so does our manager, on our index alone."""
    path = tmp_path / "sub" / "mine.yaml"
    path.parent.mkdir()
    (tmp_path / "x.jsonl").write_text('{"q": "2+2?", "a": "4"}\n')
    path.write_text(
        f"task: my_path_task\ndataset_path: json\ndataset_kwargs:\n  data_files: {tmp_path / 'x.jsonl'}\n"
        "output_type: generate_until\ntest_split: train\ndoc_to_text: q\ndoc_to_target: a\n")
    tm = task_manager([str(path)])
    assert "hellaswag" not in tm.all_tasks
    task = tm.load([str(path)])["tasks"]["my_path_task"]
    assert [task.doc_to_target(d) for d in task.test_docs()] == ["4"]


def test_a_group_listing_lm_eval_tasks_gets_lm_evals_index(tmp_path):
    """A group of the caller's whose members are lm-eval's tasks: the members resolve (our
    index alone would make each an empty inline task), and ours are still known beside them."""
    (tmp_path / "mix.yaml").write_text(
        "group: my_mix\ntask:\n  - spoken_mmlu\n  - hellaswag\n  - task: arc_easy\n    num_fewshot: 0\n"
        "  - task: my_inline\n    dataset_path: json\n")
    tm = task_manager(["my_mix"], include_path=[str(tmp_path)])
    assert {"hellaswag", "arc_easy", "spoken_mmlu", "my_mix"} <= set(tm.all_tasks)


def test_unresolved_names_the_missing_members_of_a_group_file(tmp_path):
    from lm_eval.tasks import TaskManager

    from lm_eval_audio.task_index import unresolved

    group = tmp_path / "g.yaml"
    group.write_text("group: g\ntask:\n  - spoken_mmlu\n  - nope_task\n  - group: inner\n    task: [nope_inner]\n")
    index = TaskManager(include_defaults=False, include_path=[str(tasks_dir())]).task_index
    assert unresolved([str(group), "spoken_mmlu", "nope_top"], index) == ["nope_task", "nope_inner", "nope_top"]


def test_inline_members_are_told_from_references_as_lm_eval_builds_them(tmp_path):
    """A member lm-eval would build inline (data keys of its own or handed down by its group) is
    no missing task once the full index is read; on our index alone any unknown member may be one
    of lm-eval's, referenced with overrides, so it asks for the full index."""
    from lm_eval.tasks import TaskManager

    from lm_eval_audio.task_index import unresolved

    (tmp_path / "b.yaml").write_text(
        "group: mix_b\ndataset_path: json\noutput_type: generate_until\ntest_split: train\n"
        "task:\n  - task: v1\n    doc_to_text: q\n  - v2\n")
    (tmp_path / "a.yaml").write_text("group: mix_a\ntask:\n  - task: hellaswag\n    dataset_path: /data/local\n")
    (tmp_path / "c.yaml").write_text("group: mix_c\ntask: hellaswag\n")
    index = TaskManager(include_defaults=False, include_path=[str(tmp_path)]).task_index
    assert unresolved(["mix_b"], index) == []
    assert unresolved(["mix_b"], index, inline_ok=False) == ["v1", "v2"]
    assert unresolved(["mix_a"], index, inline_ok=False) == ["hellaswag"]
    assert unresolved(["mix_c"], index, inline_ok=False) == []  # lm-eval ignores a non-list `task`
    (tmp_path / "x.yaml").write_text("task: x\n")
    (tmp_path / "d.yaml").write_text(f"group: mix_d\ntask:\n  - {tmp_path / 'x.yaml'}\n")
    index = TaskManager(include_defaults=False, include_path=[str(tmp_path)]).task_index
    assert unresolved(["mix_d"], index) == [str(tmp_path / "x.yaml")]  # a member is never read as a path


def test_an_unknown_task_is_refused_by_name():
    with pytest.raises(ValueError, match="no_such_task_anywhere"):
        task_manager(["no_such_task_anywhere"])
