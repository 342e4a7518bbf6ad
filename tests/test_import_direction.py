"""`finetune` depends on `lm_eval_audio`, never the reverse: no module of lm_eval_audio names it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lm_eval_audio"


def _finetune_references(path: Path) -> list[str]:
    """Imports of finetune and module-name strings naming it (importlib, entry-point tables)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] == "finetune"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "finetune":
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("finetune."):
            found.append(f"string {node.value!r}")
    return [f"{path.relative_to(PACKAGE.parent)}:{ref}" for ref in found]


def test_lm_eval_audio_never_imports_finetune():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 40  # the scan saw the package
    refs = [r for m in modules for r in _finetune_references(m)]
    assert refs == []


def test_scan_catches_each_form(tmp_path):
    probe = PACKAGE / "_probe_for_test.py"
    probe.write_text("import finetune.cli\nfrom finetune.train import train\nX = 'finetune.merge'\n")
    try:
        assert len(_finetune_references(probe)) == 3
    finally:
        probe.unlink()


@pytest.mark.parametrize("name", ["finetune", "merge"])
def test_finetune_subcommands_arrive_through_entry_points(name):
    from lm_eval_audio import plugins
    from lm_eval_audio.cli import build_parser

    assert plugins.commands()[name].startswith("finetune.")
    parser = build_parser()
    assert name in parser._subparsers._group_actions[0].choices
    assert callable(plugins.trainer("lora"))
