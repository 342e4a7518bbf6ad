"""Which audio-in, text-out model types the installed transformers carries, asked of transformers.

A model type counts when its processor (`PROCESSOR_MAPPING_NAMES`) holds an audio feature
extractor (a `feature_extractor` or `audio_processor` attribute; where transformers maps the
model type to a feature extractor class, that class is a `SequenceFeatureExtractor`) and its
model is registered under one of the auto classes that generate text. Each one is either
supported (`facts.ARCHS`) or refused by name (`facts.REFUSED`).
"""

from __future__ import annotations

from dataclasses import dataclass

from lm_eval_audio.arch.facts import ARCHS, REFUSED, unavailable

# transformers' auto mappings whose models produce text tokens.
TEXT_GENERATING_MAPPINGS = (
    "MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES",
    "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES",
    "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
    "MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES",
    "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES",
)
_AUDIO_ATTRIBUTES = ("feature_extractor", "audio_processor")


def _takes_audio(model_type: str, processor_name: str) -> bool:
    import transformers
    from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
    from transformers.models.auto.feature_extraction_auto import FEATURE_EXTRACTOR_MAPPING_NAMES

    extractor = FEATURE_EXTRACTOR_MAPPING_NAMES.get(model_type)
    try:
        processor = getattr(transformers, processor_name, None)
        if processor is None or not any(a in processor.get_attributes() for a in _AUDIO_ATTRIBUTES):
            return False
        extractor_class = getattr(transformers, extractor, None) if extractor else None
        return extractor_class is None or issubclass(extractor_class, SequenceFeatureExtractor)
    except ImportError:
        # a processor whose own backend is missing here (transformers' placeholder class raises
        # on any attribute): it counts when transformers maps its model type to a feature extractor
        return extractor is not None


def audio_text_model_types() -> dict[str, tuple[str, ...]]:
    """model_type -> its text-generating model classes, for every model type of the installed
    transformers whose processor takes audio and whose model generates text."""
    from transformers.models.auto import modeling_auto
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    out: dict[str, tuple[str, ...]] = {}
    for model_type, processor_name in sorted(PROCESSOR_MAPPING_NAMES.items()):
        classes = []
        for mapping in TEXT_GENERATING_MAPPINGS:
            names = getattr(modeling_auto, mapping).get(model_type)
            for name in [names] if isinstance(names, str) else names or []:
                if name not in classes:
                    classes.append(name)
        if classes and _takes_audio(model_type, processor_name):
            out[model_type] = tuple(classes)
    return out


@dataclass(frozen=True)
class Coverage:
    """One model type's status: `supported`, `unavailable` (supported, but a package it needs
    does not import here), `refused`, or `unknown` (in neither table: a test fails on it)."""

    model_type: str
    model_classes: tuple[str, ...]
    status: str
    reason: str = ""


def coverage() -> list[Coverage]:
    """The status of every audio-in, text-out model type of the installed transformers."""
    rows = []
    for model_type, classes in audio_text_model_types().items():
        if model_type in ARCHS:
            why = unavailable(model_type)
            rows.append(Coverage(model_type, classes, "unavailable" if why else "supported", why or ""))
        elif model_type in REFUSED:
            rows.append(Coverage(model_type, classes, "refused", REFUSED[model_type]))
        else:
            rows.append(Coverage(model_type, classes, "unknown", "in neither facts.ARCHS nor facts.REFUSED"))
    return rows
