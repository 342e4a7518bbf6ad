"""The installed package declares the transformers it needs: the internals the model layer calls."""

from __future__ import annotations

import inspect
from importlib.metadata import requires

from packaging.requirements import Requirement
from packaging.version import Version

# The first transformers release with `cache=` in the models' forward (5.23 still named it
# `past_key_values`), which multiple-choice scoring passes when it reuses a context's KV cache.
NEEDED = Version("5.24.0")


def _transformers_requirements() -> list[Requirement]:
    return [r for r in map(Requirement, requires("lm-eval-audio") or []) if r.name == "transformers"]


def test_every_transformers_requirement_starts_at_the_needed_release():
    reqs = _transformers_requirements()
    assert len(reqs) >= 2  # the dependency and the serving extra
    for r in reqs:
        assert r.specifier.contains(NEEDED), r
        assert not r.specifier.contains(Version("5.23.0")), f"{r} admits a release without `cache=`"


def test_the_installed_transformers_has_the_internals_the_floor_stands_for():
    import transformers
    from transformers.masking_utils import create_bidirectional_mask
    from transformers.models.qwen2.modeling_qwen2 import Qwen2Model

    assert Version(transformers.__version__) >= NEEDED
    assert "cache" in inspect.signature(Qwen2Model.forward).parameters  # models/forward.py passes cache=
    assert {"config", "inputs_embeds", "attention_mask"} <= set(inspect.signature(create_bidirectional_mask).parameters)
