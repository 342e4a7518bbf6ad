"""What `lm_eval_audio.pth` runs in every Python process of the environment: almost nothing.

It puts one tiny finder at the front of `sys.meta_path` that answers no import itself: it only
notices the moment a process first imports `lm_eval`, then loads the real hook (`_hook.py`,
which patches lm-eval's modules as they load) and steps aside. A process that never imports
lm-eval pays for this module and one string comparison per import, nothing more: no
`importlib.abc`, no `importlib.metadata`, no other module of ours.

The `.pth` line wraps the import in `try`, so a broken or removed package never makes Python
print "Error processing line ... of lm_eval_audio.pth" at every start.
"""

import sys

_TRIGGER = "lm_eval"


class _FirstLmEvalImport:
    """Meta-path finder that loads the hook when `lm_eval` is first imported, finding nothing."""

    @staticmethod
    def find_spec(fullname, path=None, target=None):
        if fullname != _TRIGGER:
            return None
        _uninstall()
        try:
            from lm_eval_audio import _hook

            _hook.install()
        except Exception:  # the hook must never stop lm-eval from importing
            import logging

            logging.getLogger("lm_eval_audio").warning(
                "lm-eval-audio's start-up hook failed to load; lm-eval runs without the plugin's "
                "models, tasks and patches", exc_info=True)
        return None  # let the normal finders import lm_eval itself


def _uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if f is not _FirstLmEvalImport]


def install() -> None:
    """Put the finder in place (idempotent); load the hook at once if lm-eval is imported already."""
    if _TRIGGER in sys.modules:
        from lm_eval_audio import _hook

        _hook.install()
    elif _FirstLmEvalImport not in sys.meta_path:
        sys.meta_path.insert(0, _FirstLmEvalImport)


install()
