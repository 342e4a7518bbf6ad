"""Start and stop a local `transformers serve` for a checkpoint (tests and `bench/serve.py`).

`transformers serve` (the `serving` extra of transformers) runs the model behind an
OpenAI-compatible API: `/v1/chat/completions` (with `input_audio` for audio LLMs) and
`/v1/audio/transcriptions` (speech recognizers such as Whisper). It runs one `generate` at a time
unless continuous batching is on, which 5.24 does not offer for audio models.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

SERVING_MODULES = ("fastapi", "uvicorn", "python_multipart")


def missing_serving_modules() -> list[str]:
    """The modules of the `serving` extra that are not installed (empty when it is)."""
    return [m for m in SERVING_MODULES if importlib.util.find_spec(m) is None]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def transformers_serve(model_dir: str | Path, log_file: str | Path, *, threads: int = 1,
                       startup_timeout: float = 180.0) -> Iterator[str]:
    """Run `transformers serve MODEL_DIR` on 127.0.0.1 (a free port, CPU); yield its root URL.

    The server's output goes to `log_file`; its tail is in the error if it fails to start. The
    process is terminated (then killed) on exit.
    """
    import requests

    missing = missing_serving_modules()
    if missing:
        raise RuntimeError(f"transformers serve needs the serving extra (missing {', '.join(missing)}): "
                           "pip install 'lm-eval-audio[serving]'")
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    log_file = Path(log_file)
    with open(log_file, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "transformers.cli.transformers", "serve", str(model_dir),
             "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
            stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {proc.returncode}:\n{log_file.read_text()[-3000:]}")
            try:
                if requests.get(url + "/health", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"transformers serve did not answer within {startup_timeout:g} s:\n"
                                   f"{log_file.read_text()[-3000:]}")
            time.sleep(0.5)
        logger.info("transformers serve %s at %s", model_dir, url)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
