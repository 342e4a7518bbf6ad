"""What this package adds to lm-eval's registries, as lazy "module:attr" placeholders.

Pure data: the startup hook reads it in every process that imports lm-eval, so nothing here
may import torch, transformers or our own heavy modules. Models come from the entry points in
`pyproject.toml` (group `lm_eval.models`) instead, since lm-eval will read those itself.

A placeholder must equal f"{obj.__module__}:{obj.__name__}" of the object that its module
registers with lm-eval's decorators, or the decorator raises on import.
"""

# registry attribute in lm_eval.api.registry -> {alias: "module:attr" or plain value}
LAZY: dict[str, dict[str, object]] = {
    "filter_registry": {
        "choice_letter": "lm_eval_audio.filters.choice:ChoiceFilter",  # issue 3
        "label_index": "lm_eval_audio.filters.label:LabelIndexFilter",  # issue 7
        "strict_letter": "lm_eval_audio.filters.choice:StrictLetterFilter",  # issue 10
        "lenient_letter": "lm_eval_audio.filters.choice:LenientLetterFilter",
        "strict_label": "lm_eval_audio.filters.label:StrictLabelFilter",  # issue 10
    },
    "metric_registry": {
        "extraction_failure": "lm_eval_audio.filters.choice:extraction_failure",  # issue 3
        "judge_rate": "lm_eval_audio.filters.choice:judge_rate",  # issue 3
        "exact_match_answered": "lm_eval_audio.filters.choice:exact_match_answered",  # issue 10
        "wer": "lm_eval_audio.metrics.wer:wer_pair",  # issue 7
        "wer_unnormalised": "lm_eval_audio.metrics.wer:wer_pair",  # issue 7
        "wer_substitutions": "lm_eval_audio.metrics.wer:wer_pair",  # issue 7
        "wer_deletions": "lm_eval_audio.metrics.wer:wer_pair",  # issue 7
        "wer_insertions": "lm_eval_audio.metrics.wer:wer_pair",  # issue 7
        "wer_seed": "lm_eval_audio.metrics.wer:wer_pair",  # issue 10
    },
    "aggregation_registry": {
        "answered_accuracy": "lm_eval_audio.filters.choice:answered_accuracy",  # issue 10
        "wer": "lm_eval_audio.metrics.wer:agg_wer",  # issue 7
        "wer_unnormalised": "lm_eval_audio.metrics.wer:agg_wer_unnormalised",  # issue 7
        "wer_substitutions": "lm_eval_audio.metrics.wer:agg_substitution_rate",  # issue 7
        "wer_deletions": "lm_eval_audio.metrics.wer:agg_deletion_rate",  # issue 7
        "wer_insertions": "lm_eval_audio.metrics.wer:agg_insertion_rate",  # issue 7
        "wer_seed": "lm_eval_audio.metrics.wer:agg_wer_seed",  # issue 10
    },
    "metric_agg_registry": {
        "extraction_failure": "lm_eval.api.metrics:mean",  # issue 3
        "judge_rate": "lm_eval.api.metrics:mean",  # issue 3
        "exact_match_answered": "lm_eval_audio.filters.choice:answered_accuracy",  # issue 10
        "wer": "lm_eval_audio.metrics.wer:agg_wer",  # issue 7
        "wer_unnormalised": "lm_eval_audio.metrics.wer:agg_wer_unnormalised",  # issue 7
        "wer_substitutions": "lm_eval_audio.metrics.wer:agg_substitution_rate",  # issue 7
        "wer_deletions": "lm_eval_audio.metrics.wer:agg_deletion_rate",  # issue 7
        "wer_insertions": "lm_eval_audio.metrics.wer:agg_insertion_rate",  # issue 7
        "wer_seed": "lm_eval_audio.metrics.wer:agg_wer_seed",  # issue 10
    },
    "higher_is_better_registry": {
        "extraction_failure": False,  # issue 3
        "judge_rate": False,  # issue 3
        "exact_match_answered": True,  # issue 10
        "wer": False,  # issue 7
        "wer_unnormalised": False,  # issue 7
        "wer_substitutions": False,  # issue 7
        "wer_deletions": False,  # issue 7
        "wer_insertions": False,  # issue 7
        "wer_seed": False,  # issue 10
    },
}
