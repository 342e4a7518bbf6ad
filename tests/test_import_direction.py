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
    where = path.relative_to(PACKAGE.parent) if path.is_relative_to(PACKAGE.parent) else path
    return [f"{where}:{ref}" for ref in found]


def test_lm_eval_audio_never_imports_finetune():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 40  # the scan saw the package
    refs = [r for m in modules for r in _finetune_references(m)]
    assert refs == []


def test_scan_catches_each_form(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import finetune.cli\nfrom finetune.train import train\nX = 'finetune.merge'\n")
    assert len(_finetune_references(probe)) == 3


@pytest.mark.parametrize("name", ["finetune", "merge"])
def test_finetune_subcommands_arrive_through_entry_points(name):
    from lm_eval_audio import plugins
    from lm_eval_audio.cli import build_parser

    assert plugins.commands()[name].startswith("finetune.")
    parser = build_parser()
    assert name in parser._subparsers._group_actions[0].choices
    assert callable(plugins.trainer("lora"))


# Floors of the package, lowest first: a module may import its own unit or a unit on a lower
# floor, never one on its floor or above. Units are the subpackages and the top-level modules.
FLOORS: list[set[str]] = [
    {"audio", "files", "logs", "openai_client", "registration"},  # shared utilities; what our tasks register (data)
    # how architectures take audio; what runs record; metrics; speech; the TaskManager runs build
    {"arch", "trust", "metrics", "tts", "task_index"},
    {"data", "twin"},  # task data; spoken twins of any task
    {"filters"},
    {"serve"},
    {"models"},
    {"report", "tiny"},
    {"plugins"},
    {"cli", "reproduce", "archs_cli"},  # the commands
    {"_hook"},  # the start-up hook
    {"_boot"},  # what the .pth runs: loads the hook when lm_eval is imported
]
FLOOR = {unit: i for i, units in enumerate(FLOORS) for unit in units}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(rel.parts).removesuffix(".__init__")


def _imports(path: Path, known: set[str]) -> set[str]:
    """Every lm_eval_audio module that `path` imports, at module level or inside a function.

    `from PKG import name` counts as an import of the submodule PKG.name where one exists, else of
    PKG; a module's own parent packages are left out (Python imports them first in any case)."""
    mod = _module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        found |= {n for n in names if n.split(".")[0] == "lm_eval_audio" and not mod.startswith(n + ".")}
    return found


def _unit(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _floor_violations(modules: dict[str, set[str]]) -> list[str]:
    bad = []
    for mod, imported in modules.items():
        src = _unit(mod)
        for target in imported:
            dst = _unit(target)
            if dst is None or dst == src:
                continue
            if src not in FLOOR or dst not in FLOOR:
                bad.append(f"{mod} -> {target}: unit without a floor (add it to FLOORS)")
            elif FLOOR[dst] >= FLOOR[src]:
                bad.append(f"{mod} -> {target}: {dst} is not below {src}")
    return bad


def _cycles(modules: dict[str, set[str]]) -> list[list[str]]:
    """Import circles between modules (depth-first search for a back edge)."""
    graph = {m: {t for t in imported if t in modules and t != m} for m, imported in modules.items()}
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return cycles


def _package_imports() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    known = {_module_name(p) for p in paths}
    return {_module_name(p): _imports(p, known) for p in paths}


def test_every_import_points_down_a_floor():
    modules = _package_imports()
    assert {_unit(m) for m in modules if _unit(m)} <= set(FLOOR) | {None}
    assert _floor_violations(modules) == []


def test_no_import_circle():
    assert _cycles(_package_imports()) == []


def test_floor_check_catches_serve_importing_models_and_a_circle():
    modules = _package_imports()
    modules["lm_eval_audio.serve.client"] = modules["lm_eval_audio.serve.client"] | {"lm_eval_audio.models.hf_audio"}
    assert any("serve.client -> lm_eval_audio.models.hf_audio" in v for v in _floor_violations(modules))
    circle = {"lm_eval_audio.tiny.a": {"lm_eval_audio.tiny.b"}, "lm_eval_audio.tiny.b": {"lm_eval_audio.tiny.a"}}
    assert _cycles(circle) == [["lm_eval_audio.tiny.a", "lm_eval_audio.tiny.b", "lm_eval_audio.tiny.a"]]
