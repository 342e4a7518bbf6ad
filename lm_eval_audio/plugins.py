"""Entry points through which other packages extend lm-eval-audio without being imported by it.

`finetune` depends on `lm_eval_audio`, never the reverse (tests/test_import_direction.py): the
`lm-eval-audio finetune` / `merge` subcommands and the seed study's adapter training reach it
through entry points that `finetune` declares in pyproject.toml:

- group `lm_eval_audio.commands`: `name = "module"`, a module with `HELP`, `add_arguments(parser)`
  and `run(args) -> int` (as our own subcommand modules);
- group `lm_eval_audio.trainers`: `name = "module:function"`, `function(config_path, overrides) ->
  output directory` (`reproduce.py` trains the seed's adapter with `lora`).
"""

from __future__ import annotations

from importlib.metadata import entry_points


def commands() -> dict[str, str]:
    """Subcommand name -> module name, from the installed packages' entry points."""
    return {ep.name: ep.value for ep in entry_points(group="lm_eval_audio.commands")}


def trainer(name: str):
    """The adapter-training function registered as `name` (group `lm_eval_audio.trainers`)."""
    found = [ep for ep in entry_points(group="lm_eval_audio.trainers") if ep.name == name]
    if not found:
        raise RuntimeError(f"no trainer {name!r} installed (entry point group lm_eval_audio.trainers); "
                           f"install lm-eval-audio with its finetune package")
    return found[0].load()
