"""lm-eval-audio: audio LLMs as first-class models and tasks in lm-evaluation-harness.

Kept import-light on purpose: `lm_eval_audio.pth` imports this package (and `_boot`) in every process.
"""

__version__ = "0.1.0"
