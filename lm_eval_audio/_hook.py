"""Startup hook that makes `lm_eval --model qwen2audio --tasks spoken_mmlu` work with no flag.

lm-eval 0.4.13 has no plugin discovery: `--model` only resolves its own registry and
`--include_path` is the only way to add task folders. A `.pth` file installed with this
package imports this module in every Python process of the environment, so it must stay
cheap: it imports nothing heavy (no torch, no transformers, not even lm_eval). It installs a
post-import hook that acts only when a process imports lm-eval itself:

- after `lm_eval.api.registry` loads, our models are registered as lazy placeholders (the
  entry points declared in `pyproject.toml`, group `lm_eval.models`, which future lm-eval
  versions read themselves), and so are our filters and metrics (`registration.py`);
- after `lm_eval.api.model` loads, the request-cache key learns to hash numpy audio arrays by
  content (lm-eval hashes bytes and images, but raises on arrays, so `--use_cache` crashed),
  and the request cache (`CachingLM`) is scoped by the model's identity: a model with a
  `cache_identity()` (ours, `identity.py`) gets its own table in the cache file, so runs that
  differ in any scoring argument never share an answer; a model with `see_requests()` sees the
  full request list before cached requests are filtered out (the shuffle control needs it);
- after `lm_eval.api.task` loads, a task with audio (`doc_to_audio`) refuses `num_fewshot` > 0:
  lm-eval gives only the scored document its audio, so every example would be text without its
  clip (unless its audio function says its examples are text by design: a spoken twin's);
- after `lm_eval.tasks.manager` loads, every `TaskManager` also indexes our `tasks/` folder;
- after `lm_eval.api.metrics` (and `lm_eval.evaluator_utils`, which imports it by name) loads,
  `stderr_for_metric` gives an aggregation that carries a `bootstrap_stderr(items, iters)`
  attribute (our WER aggregations, `wer.py`) that function, with lm-eval's `bootstrap_iters`:
  lm-eval bootstraps only a fixed list of its own aggregations and reports "N/A" otherwise.
- after `lm_eval.api.task` loads, what our task loaders record about their data (source, TTS
  settings; `data._common.record_protocol`) goes into the task's `metadata.protocol`, with the
  number and a content hash of the items scored, so the results JSON says how it was made; a
  `doc_to_audio` with a `for_task` attribute (a spoken twin's) is bound to its task there too,
  and what it records goes the same way.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys

ENTRY_POINT_GROUP = "lm_eval.models"


def _register_models(registry_module) -> None:
    # lm_eval.models registers the built-ins; get_model() only imports it while the registry is
    # empty, so registering ours first would make `--model hf` vanish.
    import importlib.metadata as md

    import lm_eval.models  # noqa: F401

    registry = registry_module.model_registry
    for ep in md.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in registry:
            # The placeholder string must equal f"{cls.__module__}:{cls.__name__}" so that the
            # class's own @register_model decorator upgrades it instead of raising.
            registry.register(ep.name, target=ep.value)

    from lm_eval_audio.registration import LAZY

    for registry_name, entries in LAZY.items():
        target_registry = getattr(registry_module, registry_name)
        for alias, target in entries.items():
            if alias not in target_registry:
                target_registry.register(alias, target=target)


def _patch_cache_key(model_module) -> None:
    original = model_module._multimodal_cache_default
    if getattr(original, "_lm_eval_audio", False):
        return

    def cache_default(obj):
        import hashlib

        if type(obj).__module__ == "numpy" and hasattr(obj, "tobytes"):
            digest = hashlib.sha256(obj.tobytes()).hexdigest()
            return {"__ndarray_sha256__": digest, "dtype": str(obj.dtype), "shape": list(obj.shape)}
        return original(obj)

    cache_default._lm_eval_audio = True
    model_module._multimodal_cache_default = cache_default


def _patch_caching_lm(model_module) -> None:
    cls = model_module.CachingLM
    if getattr(cls.__init__, "_lm_eval_audio", False):
        return
    original_init, original_getattr = cls.__init__, cls.__getattr__

    def __init__(self, lm, cache_db):
        original_init(self, lm, cache_db)
        identity = getattr(lm, "cache_identity", None)
        if callable(identity):
            from sqlitedict import SqliteDict

            self.dbdict.close()
            self.dbdict = SqliteDict(cache_db, tablename=f"lm_eval_audio_{identity()}", autocommit=True)
            lm.set_cache_hook(self.get_cache_hook())

    def __getattr__(self, attr):
        fn = original_getattr(self, attr)
        see = getattr(self.lm, "see_requests", None)
        if attr not in ("loglikelihood", "loglikelihood_rolling", "generate_until") or see is None:
            return fn

        def with_full_view(requests, *args, **kwargs):
            see(requests)
            return fn(requests, *args, **kwargs)

        return with_full_view

    __init__._lm_eval_audio = True
    cls.__init__, cls.__getattr__ = __init__, __getattr__


def _patch_model_module(model_module) -> None:
    _patch_cache_key(model_module)
    _patch_caching_lm(model_module)


def _patch_fewshot_on_audio(task_module) -> None:
    cls = task_module.Task
    if getattr(cls.build_all_requests, "_lm_eval_audio", False):
        return
    original = cls.build_all_requests

    def build_all_requests(self, *args, **kwargs):
        shots = self.config.num_fewshot or 0
        audio = getattr(self.config, "doc_to_audio", None)
        # A spoken twin's examples are text by design (`text_fewshot`): only its document is spoken.
        if audio and shots > 0 and not getattr(audio, "text_fewshot", False):
            raise ValueError(
                f"{self.config.task}: num_fewshot={shots} on a task with audio: lm-eval gives only the scored "
                f"document its audio, so the {shots} example(s) would be text without their clips. "
                f"Run it with --num_fewshot 0"
            )
        return original(self, *args, **kwargs)

    build_all_requests._lm_eval_audio = True
    cls.build_all_requests = build_all_requests


def _patch_task_manager(manager_module) -> None:
    cls = manager_module.TaskManager
    if getattr(cls.__init__, "_lm_eval_audio", False):
        return
    original_init = cls.__init__

    def __init__(self, *args, include_path=None, **kwargs):
        from lm_eval_audio.files import tasks_dir

        ours = str(tasks_dir())
        if include_path is None:
            paths = []
        elif isinstance(include_path, (list, tuple)):
            paths = list(include_path)
        else:
            paths = [include_path]
        # Ours first, so a user's --include_path can still override a task of ours.
        paths = [ours] + [p for p in paths if str(p) != ours]
        original_init(self, *args, include_path=paths, **kwargs)

    __init__._lm_eval_audio = True
    cls.__init__ = __init__


def _patch_stderr_for_metric(module) -> None:
    original = getattr(module, "stderr_for_metric", None)
    if original is None or getattr(original, "_lm_eval_audio", False):
        return

    def stderr_for_metric(metric, bootstrap_iters):
        ours = getattr(metric, "bootstrap_stderr", None)
        if ours is not None:
            if bootstrap_iters <= 0:
                return None  # as lm-eval: no stderr when bootstrap_iters is 0
            return lambda items: ours(items, bootstrap_iters)
        return original(metric, bootstrap_iters)

    stderr_for_metric._lm_eval_audio = True
    stderr_for_metric.__doc__ = original.__doc__
    module.stderr_for_metric = stderr_for_metric


def _patch_task_protocol(task_module) -> None:
    cls = task_module.ConfigurableTask
    if getattr(cls.download, "_lm_eval_audio", False):
        return
    original_download, original_dump = cls.download, cls.dump_config
    attr = "_lm_eval_audio_protocol"  # data._common.PROTOCOL_ATTR (not imported: keep the hook light)

    def download(self, *args, **kwargs):
        original_download(self, *args, **kwargs)
        protocol = getattr(getattr(self, "dataset", None), attr, None)
        bind = getattr(getattr(self.config, "doc_to_audio", None), "for_task", None)
        if callable(bind):
            # An audio function that needs its task, not only the document (a spoken twin speaks
            # the prompt the task renders): bound here, as the task loads. What it records joins
            # what the task's own loader recorded (whose facts about the data win).
            self.config.doc_to_audio, facts = bind(self)
            protocol = {**facts, **(protocol or {})}
        if protocol is not None:
            self._lm_eval_audio_protocol = protocol

    def dump_config(self):
        config = original_dump(self)
        protocol = getattr(self, "_lm_eval_audio_protocol", None)
        if protocol is not None:
            from lm_eval_audio.data._common import items_sha256

            docs = list(self.eval_docs)
            scored = sorted({inst.doc_id for inst in self.instances}) if self.instances else range(len(docs))
            config["metadata"] = dict(config.get("metadata") or {}, protocol=dict(
                protocol, items_scored=len(scored), items_sha256=items_sha256(docs[i] for i in scored)))
        return config

    download._lm_eval_audio = True
    cls.download, cls.dump_config = download, dump_config


def _patch_task_module(task_module) -> None:
    _patch_fewshot_on_audio(task_module)
    _patch_task_protocol(task_module)


_AFTER_IMPORT = {
    "lm_eval.api.registry": _register_models,
    "lm_eval.api.model": _patch_model_module,
    "lm_eval.api.task": _patch_task_module,
    "lm_eval.tasks.manager": _patch_task_manager,
    "lm_eval.api.metrics": _patch_stderr_for_metric,
    "lm_eval.evaluator_utils": _patch_stderr_for_metric,
}


class _Loader(importlib.abc.Loader):
    def __init__(self, inner, action):
        self._inner = inner
        self._action = action

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module):
        self._inner.exec_module(module)
        self._action(module)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        action = _AFTER_IMPORT.get(fullname)
        if action is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _Loader(spec.loader, action)
        return spec


def install() -> None:
    """Install the post-import hook (idempotent); act at once on modules already imported."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
    for name, action in _AFTER_IMPORT.items():
        module = sys.modules.get(name)
        if module is not None:
            action(module)


install()
