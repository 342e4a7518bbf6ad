"""A gloo process group is destroyed at exit, before the interpreter tears down (an undestroyed
one aborts some exits of `accelerate launch` on CPU ranks with SIGABRT)."""

import subprocess
import sys
import textwrap


def _exit_state(register: bool, tmp_path) -> str:
    code = textwrap.dedent(f"""
        import atexit
        import torch.distributed as dist
        from lm_eval_audio.models.process_group import close_gloo_group_at_exit

        dist.init_process_group("gloo", init_method="file://{tmp_path / 'store'}", rank=0, world_size=1)
        # atexit runs last-registered first: this check runs after the plugin's handler.
        atexit.register(lambda: print("initialised at exit:", dist.is_initialized(), flush=True))
        if {register}:
            close_gloo_group_at_exit()
            close_gloo_group_at_exit()  # a second model in the same process: destroyed once, no error
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr  # an atexit handler's error leaves the exit code 0
    return proc.stdout.strip()


def test_gloo_group_is_destroyed_before_interpreter_exit(tmp_path):
    assert _exit_state(True, tmp_path) == "initialised at exit: False"


def test_without_the_handler_the_group_outlives_the_atexit_handlers(tmp_path):
    # The control: what lm-eval leaves behind on its own.
    assert _exit_state(False, tmp_path) == "initialised at exit: True"
