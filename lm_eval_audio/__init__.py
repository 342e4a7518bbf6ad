"""lm-eval-audio: audio LLMs as first-class models and tasks in lm-evaluation-harness.

Kept import-light on purpose: the startup hook imports this package in every process.
"""

__version__ = "0.1.0"
