"""Python hooks of the timbre-range tasks; the data itself is owned by lm_eval_audio.data.timbre."""

from lm_eval_audio.data import timbre
from lm_eval_audio.filters.label import INVALID
from lm_eval_audio.data.task_audio import refuses_fewshot
from lm_eval_audio.registration import register_components

# Our filters and metrics join lm-eval's registries when one of our tasks loads, not before.
register_components()


def load_synth(**_metadata):
    """`timbre_range_synth`: generated on first use into the cache folder, reused after."""
    return timbre.load_synth()


def load_real(timbre_range_dir=None, **_metadata):
    """`ccmusic-database/timbre_range` (config `range`) from the hub, or the local folder given
    with `--metadata '{"timbre_range_dir": "/path"}'`."""
    return timbre.load_timbre_range(timbre_range_dir)


def load_seed(split="train", limit=None, timbre_range_dir=None, timbre_range_source=None, **_metadata):
    """The seed's items (first `limit` of `split`): the real data, or with
    `--metadata '{"timbre_range_source": "synth"}'` the generated stand-in (offline)."""
    return timbre.load_seed_split(split, limit, timbre_range_dir=timbre_range_dir,
                                  timbre_range_source=timbre_range_source)


@refuses_fewshot
def doc_to_audio(doc):
    """One clip per doc, as a file reference the model decodes when its batch runs."""
    return [doc["audio"]]


def parse_failure(references, predictions):
    """1.0 when the answer filter could not map the model's output to a label (never guessed)."""
    return float(predictions[0] == INVALID)
