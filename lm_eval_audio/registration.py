"""What this package adds to lm-eval's filter and metric registries, and when.

Our filters and metrics join lm-eval's registries only when one of our tasks loads (each task
folder's `utils.py` calls `register_components()`) or one of our models is built (lm-eval builds
the model before it loads the tasks, so a user's own YAML may name `wer` or `choice_letter` when
it runs on our models; on another model, its `utils.py` calls `register_components()`), not
whenever lm-eval is imported: a run of lm-eval's own tasks on lm-eval's own models, and
lm-eval's own test suite, see lm-eval's registries as lm-eval ships them. They go in as lazy "module:attr" placeholders, so registering imports none of our heavy
modules. Models come from the entry points in `pyproject.toml` (group `lm_eval.models`), which
the start-up hook registers, since `--model NAME` is resolved before any task loads.

A placeholder must equal f"{obj.__module__}:{obj.__name__}" of the object that its module
registers with lm-eval's decorators, or the decorator raises on import.
"""

from __future__ import annotations

_WER = "lm_eval_audio.metrics.wer_lm_eval"
# each WER metric's corpus aggregation, under the metric's own name
_WER_AGGREGATIONS = {
    "wer": f"{_WER}:agg_wer",
    "wer_unnormalised": f"{_WER}:agg_wer_unnormalised",
    "wer_substitutions": f"{_WER}:agg_substitution_rate",
    "wer_deletions": f"{_WER}:agg_deletion_rate",
    "wer_insertions": f"{_WER}:agg_insertion_rate",
    "wer_seed": f"{_WER}:agg_wer_seed",
}

# registry attribute in lm_eval.api.registry -> {alias: "module:attr" or plain value}
LAZY: dict[str, dict[str, object]] = {
    "filter_registry": {
        "choice_letter": "lm_eval_audio.filters.choice:ChoiceFilter",
        "label_index": "lm_eval_audio.filters.label:LabelIndexFilter",
        "strict_letter": "lm_eval_audio.filters.choice:StrictLetterFilter",
        "lenient_letter": "lm_eval_audio.filters.choice:LenientLetterFilter",
        "strict_label": "lm_eval_audio.filters.label:StrictLabelFilter",
    },
    "metric_registry": {
        "extraction_failure": "lm_eval_audio.filters.choice:extraction_failure",
        "judge_rate": "lm_eval_audio.filters.choice:judge_rate",
        "exact_match_answered": "lm_eval_audio.filters.choice:exact_match_answered",
        **{name: f"{_WER}:wer_pair" for name in _WER_AGGREGATIONS},
    },
    "aggregation_registry": {
        "answered_accuracy": "lm_eval_audio.filters.choice:answered_accuracy",
        **_WER_AGGREGATIONS,
    },
    "metric_agg_registry": {
        "extraction_failure": "lm_eval.api.metrics:mean",
        "judge_rate": "lm_eval.api.metrics:mean",
        "exact_match_answered": "lm_eval_audio.filters.choice:answered_accuracy",
        **_WER_AGGREGATIONS,
    },
    "higher_is_better_registry": {
        "extraction_failure": False,
        "judge_rate": False,
        "exact_match_answered": True,
        **{name: False for name in _WER_AGGREGATIONS},
    },
}


# Aggregations that a task YAML may leave implicit (`- metric: wer` without `aggregation:`):
# lm-eval finds the default by inverting its aggregation registry, which matches only entries
# already loaded, not lazy placeholders, so these are loaded as they are registered.
_LOADED_AT_ONCE = tuple(_WER_AGGREGATIONS)


def register_components() -> None:
    """Register our filters, metrics and aggregations with lm-eval (idempotent: a name lm-eval
    already knows is left as it is)."""
    from lm_eval.api import registry as lm_registry

    for registry_name, entries in LAZY.items():
        target_registry = getattr(lm_registry, registry_name)
        for alias, target in entries.items():
            if alias not in target_registry:
                target_registry.register(alias, target=target)
    for name in _LOADED_AT_ONCE:
        lm_registry.aggregation_registry.get(name)
