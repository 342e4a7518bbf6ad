"""What lm-eval 0.4.13 gives a plugin no other way to do, done as lm-eval's modules load.

`_boot.py` (run by `lm_eval_audio.pth` in every process) loads this module only when a process
imports `lm_eval`. From then on a post-import finder acts as each module below finishes loading:

- `lm_eval.api.registry`: our models join the model registry as lazy placeholders (the entry
  points of `pyproject.toml`, group `lm_eval.models`, which later lm-eval versions read
  themselves), so `lm_eval --model qwen2audio` works with no flag;
- the patches of `PATCHES`, one row each (module, target, guard, replacement, feature).

Everything else lives in our own classes: the request cache's per-model table
(`AudioModelSupport.set_cache_hook`), the few-shot refusal (`data.task_audio`, only on our
tasks), our filters and metrics (`registration.register_components`, when one of our tasks loads).

Before patching a module, every row of that module is checked: the target must exist and have
the shape the replacement relies on. If any row of any module fails, the plugin stands down:
what it already patched is put back, nothing more is patched, and one warning names the lm-eval
version, what differs, and which of the plugin's features are off. lm-eval itself keeps working.
(Registering our models goes through the registry's public `register`, which changes no lm-eval
code; it stays when the patches stand down, and is skipped only if the registry itself differs.)
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import inspect
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger("lm_eval_audio")

KNOWN_LM_EVAL = "0.4.13"
ENTRY_POINT_GROUP = "lm_eval.models"
MARK = "_lm_eval_audio"  # set on every replacement: patching twice is a no-op, restoring finds the original


# --------------------------------------------------------------------------------------------
# guards: what a target must look like for its replacement to be right


def _takes(*names: str) -> Callable[[Any], bool]:
    """Guard: a callable whose parameters include `names` (in any order)."""

    def guard(target: Any) -> bool:
        fn = target.__func__ if isinstance(target, staticmethod) else target
        if not callable(fn):
            return False
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            return False
        return all(n in params for n in names)

    return guard


def _static_taking(*names: str) -> Callable[[Any], bool]:
    """Guard: a staticmethod (as stored in its class) whose parameters include `names`."""
    takes = _takes(*names)
    return lambda target: isinstance(target, staticmethod) and takes(target)


# --------------------------------------------------------------------------------------------
# replacements: each takes the original and returns what goes in its place


def _cache_default(original):
    # lm-eval hashes bytes and images in request-cache keys but raises on numpy arrays (audio).
    def cache_default(obj):
        if type(obj).__module__ == "numpy" and hasattr(obj, "tobytes"):
            import hashlib

            digest = hashlib.sha256(obj.tobytes()).hexdigest()
            return {"__ndarray_sha256__": digest, "dtype": str(obj.dtype), "shape": list(obj.shape)}
        return original(obj)

    return cache_default


def _caching_getattr(original):
    # CachingLM hands the model only the requests missing from the cache; a model with
    # `see_requests` (the shuffle control) must see the whole list first, as it would uncached.
    def __getattr__(self, attr):
        fn = original(self, attr)
        see = getattr(self.lm, "see_requests", None)
        if attr not in ("loglikelihood", "loglikelihood_rolling", "generate_until") or see is None:
            return fn

        def with_full_view(requests, *args, **kwargs):
            see(requests)
            return fn(requests, *args, **kwargs)

        return with_full_view

    return __getattr__


def _index_build(original):
    # `TaskManager` indexes lm-eval's own folder when `include_defaults` is true: ours counts as
    # part of those defaults (after lm-eval's, before the user's, so a user's folder still
    # overrides a task of ours). `include_defaults=False` indexes only what the caller named.
    build = original.__func__

    def index_build(paths, *args, **kwargs):
        paths = list(paths)
        defaults = _lm_eval_tasks_dir()
        if paths and defaults is not None and _same_dir(paths[0], defaults):
            from lm_eval_audio.files import tasks_dir

            ours = tasks_dir()
            if not any(_same_dir(p, ours) for p in paths):
                paths.insert(1, ours)
        return build(paths, *args, **kwargs)

    return staticmethod(index_build)


def _stderr_for_metric(original):
    # lm-eval bootstraps only a fixed list of its own aggregations ("N/A" otherwise); ours carry
    # their own `bootstrap_stderr(items, iters)` (metrics/wer_lm_eval.py).
    def stderr_for_metric(metric, bootstrap_iters):
        ours = getattr(metric, "bootstrap_stderr", None)
        if ours is not None:
            if bootstrap_iters <= 0:
                return None  # as lm-eval: no stderr when bootstrap_iters is 0
            return lambda items: ours(items, bootstrap_iters)
        return original(metric, bootstrap_iters)

    stderr_for_metric.__doc__ = original.__doc__
    return stderr_for_metric


_PROTOCOL = "_lm_eval_audio_protocol"  # data._common.PROTOCOL_ATTR (not imported: keep the hook light)


def _task_download(original):
    # What a task's loader recorded about its data (source, TTS settings) goes with the task; an
    # audio function that needs its task, not only the document (`for_task`: a spoken twin's, or
    # ours that refuse few-shot runs), is bound to it here, as the task loads.
    def download(self, *args, **kwargs):
        original(self, *args, **kwargs)
        protocol = getattr(getattr(self, "dataset", None), _PROTOCOL, None)
        bind = getattr(getattr(self.config, "doc_to_audio", None), "for_task", None)
        if callable(bind):
            self.config.doc_to_audio, facts = bind(self)
            if facts:  # what the task's own loader recorded about its data wins
                protocol = {**facts, **(protocol or {})}
        if protocol is not None:
            setattr(self, _PROTOCOL, protocol)

    return download


def _task_dump_config(original):
    # lm-eval writes a task's config into the results file; ours add how its data was made, with
    # the number and a content hash of the items scored.
    def dump_config(self):
        config = original(self)
        protocol = getattr(self, _PROTOCOL, None)
        if protocol is not None:
            from lm_eval_audio.data._common import items_sha256

            docs = list(self.eval_docs)
            scored = sorted({inst.doc_id for inst in self.instances}) if self.instances else range(len(docs))
            config["metadata"] = dict(config.get("metadata") or {}, protocol=dict(
                protocol, items_scored=len(scored), items_sha256=items_sha256(docs[i] for i in scored)))
        return config

    return dump_config


@dataclass(frozen=True)
class Patch:
    """One replacement of an lm-eval internal: `target` ("name" or "Class.name") in `module`."""

    module: str
    target: str
    guard: Callable[[Any], bool]
    replacement: Callable[[Any], Any]  # original -> what goes in its place
    features: tuple[str, ...]  # what of the plugin stops working without it


PATCHES: tuple[Patch, ...] = (
    Patch("lm_eval.api.model", "_multimodal_cache_default", _takes("obj"), _cache_default,
          ("--use_cache on tasks with audio",)),
    Patch("lm_eval.api.model", "CachingLM.__getattr__", _takes("self", "attr"), _caching_getattr,
          ("the shuffle control under --use_cache",)),
    Patch("lm_eval.tasks._index", "TaskIndex.build", _static_taking("paths"), _index_build,
          ("our tasks without --include_path",)),
    Patch("lm_eval.api.metrics", "stderr_for_metric", _takes("metric", "bootstrap_iters"), _stderr_for_metric,
          ("WER standard errors",)),
    Patch("lm_eval.evaluator_utils", "stderr_for_metric", _takes("metric", "bootstrap_iters"), _stderr_for_metric,
          ("WER standard errors",)),
    Patch("lm_eval.api.task", "ConfigurableTask.download", _takes("self"), _task_download,
          ("the data protocol in results", "spoken twins", "the few-shot refusal of our audio tasks")),
    Patch("lm_eval.api.task", "ConfigurableTask.dump_config", _takes("self"), _task_dump_config,
          ("the data protocol in results",)),
)
MODELS_FEATURE = "our models by name (--model qwen2audio, ...)"


# --------------------------------------------------------------------------------------------
# applying the table, and standing down


class _State:
    applied: list[tuple[Any, str, Any]] = []  # (owner, name, original) of every patch in place
    stood_down: str | None = None  # why, once the plugin stood down
    models_off: bool = False  # the model registry differed: our models are not registered


def _lm_eval_tasks_dir() -> Path | None:
    module = sys.modules.get("lm_eval.tasks")
    return Path(module.__file__).parent if module is not None and getattr(module, "__file__", None) else None


def _same_dir(a, b) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (OSError, TypeError):
        return False


def _locate(module, target: str) -> tuple[Any, str, Any]:
    """(owner, attribute name, stored value) of `target` in `module`; the stored value is read
    from the owner's `__dict__`, so a staticmethod is seen as one. Raises AttributeError."""
    *path, name = target.split(".")
    owner = module
    for part in path:
        owner = getattr(owner, part)
    stored = vars(owner)[name] if name in vars(owner) else getattr(owner, name)
    return owner, name, stored


def _original(stored: Any) -> Any:
    # A module that imported a patched function by name (evaluator_utils) holds our replacement.
    fn = stored.__func__ if isinstance(stored, staticmethod) else stored
    return getattr(fn, "__wrapped_original__", stored)


def _lm_eval_version() -> str:
    try:
        from importlib.metadata import version

        return version("lm_eval")
    except Exception:  # metadata missing: say so rather than fail
        return "(unknown version)"


def _stand_down(reason: str) -> None:
    for owner, name, original in reversed(_State.applied):
        setattr(owner, name, original)
    _State.applied.clear()
    _State.stood_down = reason
    features = sorted({f for p in PATCHES for f in p.features} | ({MODELS_FEATURE} if _State.models_off else set()))
    logger.warning(
        "lm-eval-audio stands down: the installed lm-eval %s differs from what this plugin knows (written for "
        "lm-eval %s): %s. lm-eval is left untouched. Off: %s. Our tasks still load with --include_path %s.",
        _lm_eval_version(), KNOWN_LM_EVAL, reason, "; ".join(features), _tasks_dir_or_hint())


def _tasks_dir_or_hint() -> str:
    try:
        from lm_eval_audio.files import tasks_dir

        return str(tasks_dir())
    except Exception:
        return "<lm_eval_audio's tasks folder>"


def apply_patches(module) -> bool:
    """Check every row of `PATCHES` for `module`, then apply them all, or stand down if any
    fails. Returns whether the module was patched."""
    if _State.stood_down is not None:
        return False
    rows = [p for p in PATCHES if p.module == module.__name__]
    located = []
    for p in rows:
        try:
            owner, name, stored = _locate(module, p.target)
        except (AttributeError, KeyError):
            _stand_down(f"{p.module}.{p.target} is missing")
            return False
        original = _original(stored)
        if not p.guard(original):
            _stand_down(f"{p.module}.{p.target} has another shape")
            return False
        located.append((p, owner, name, original))
    for p, owner, name, original in located:
        current = vars(owner).get(name)
        if getattr(getattr(current, "__func__", current), MARK, False):
            # Ours already: install() ran twice, or the module imported a patched function by
            # name (evaluator_utils). Standing down must still put lm-eval's own back here.
            if (owner, name, original) not in _State.applied:
                _State.applied.append((owner, name, original))
            continue
        new = p.replacement(original)
        fn = new.__func__ if isinstance(new, staticmethod) else new
        setattr(fn, MARK, True)
        fn.__wrapped_original__ = original
        setattr(owner, name, new)
        _State.applied.append((owner, name, original))
    return True


def register_models(registry_module) -> bool:
    """Register our models (entry points, group `lm_eval.models`) as lazy placeholders."""
    registry = getattr(registry_module, "model_registry", None)
    if registry is None or not callable(getattr(registry, "register", None)) or not hasattr(registry, "__contains__"):
        _State.models_off = True
        _stand_down("lm_eval.api.registry.model_registry is missing or has another shape")
        return False
    # lm_eval.models registers the built-ins; get_model() only imports it while the registry is
    # empty, so registering ours first would make `--model hf` vanish.
    import importlib.metadata as md

    import lm_eval.models  # noqa: F401

    for ep in md.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in registry:
            # The placeholder must equal f"{cls.__module__}:{cls.__name__}" so that the class's
            # own @register_model decorator upgrades it instead of raising.
            registry.register(ep.name, target=ep.value)
    return True


def _after_import(module) -> None:
    try:
        if module.__name__ == "lm_eval.api.registry":
            register_models(module)
        else:
            apply_patches(module)
    except Exception as e:  # a bug of ours must not break an lm-eval import
        _stand_down(f"patching {module.__name__} failed: {type(e).__name__}: {e}")


HOOKED = frozenset({"lm_eval.api.registry"} | {p.module for p in PATCHES})


class _Loader(importlib.abc.Loader):
    def __init__(self, inner):
        self._inner = inner

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module):
        self._inner.exec_module(module)
        _after_import(module)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname not in HOOKED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _Loader(spec.loader)
        return spec


def install() -> None:
    """Install the post-import finder (idempotent) and act at once on modules already imported."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
    for name in sorted(HOOKED):
        module = sys.modules.get(name)
        if module is not None:
            _after_import(module)
