"""The engine probe: load the edge model and decode a multi-token prompt in a child
process. Some llama-cpp-python builds segfault at the first multi-token prompt on some
CPUs (Xeons with AMX); in a child, that crash is reported with advice instead of killing
`sllm up` or `sllm doctor`.

The child is this module (`python -m edge_worker.probe`), given the edge settings as JSON
on stdin; it prints the model's name when it has decoded.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from importlib import metadata

from sllm import children
from sllm.chat import ChatMessage
from sllm.check import Check
from sllm.settings import EdgeSettings

# Loading a large model from a cold disk takes a while; a hang must still end.
PROBE_TIMEOUT_S = 120.0
PROBE_TOKENS = 8
# Not a single token: the crash this probe is for happens on a batch of them.
_PROMPT = [ChatMessage("user", "Name the largest ocean on Earth in one word.")]
# The child's exit status when the model cannot be loaded (ModelLoadError).
_LOAD_FAILED = 3
# A command (shell syntax) run instead of the child: tests set it to one that dies of
# SIGSEGV, as no CPU at hand makes llama.cpp crash.
CHILD_COMMAND_ENV = "SLLM_ENGINE_PROBE_COMMAND"

ENGINE_ADVICE = (
    'set edge.extra_buffers = "off" (SLLM_EDGE__EXTRA_BUFFERS=off) or install the tested '
    "llama-cpp-python version from requirements.lock"
)


def probe_engine(settings: EdgeSettings) -> Check:
    """Blocking; takes a second or two with the bundled model."""
    command = shlex.split(os.environ.get(CHILD_COMMAND_ENV, ""))
    command = command or [sys.executable, "-m", __name__]
    try:
        child = children.run(command, input=settings.model_dump_json(), timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return Check(
            "engine",
            False,
            f"the llama.cpp engine did not finish a multi-token prompt in {PROBE_TIMEOUT_S:g} s",
            ENGINE_ADVICE,
        )
    error = child.stderr.strip().splitlines()[-1:] or [""]
    if child.returncode < 0:
        return Check(
            "engine",
            False,
            f"the llama.cpp engine crashed ({_signal_name(-child.returncode)}) "
            "on a multi-token prompt",
            ENGINE_ADVICE,
        )
    if child.returncode == _LOAD_FAILED:
        return Check(
            "engine", False, error[0], "set edge.model_path (SLLM_EDGE__MODEL_PATH) to a GGUF file"
        )
    if child.returncode != 0:
        return Check(
            "engine",
            False,
            f"the engine probe failed (exit status {child.returncode}): {error[0]}",
            ENGINE_ADVICE,
        )
    model = child.stdout.strip().splitlines()[-1]
    version = metadata.version("llama-cpp-python")
    return Check(
        "engine",
        True,
        f"{model} decoded {PROBE_TOKENS} tokens in a child process (llama-cpp-python {version})",
    )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:  # a real-time signal has no name
        return f"signal {number}"


def _decode(settings: EdgeSettings) -> str:
    """Greedy decoding after the prompt; returns the model's name."""
    import numpy as np

    from edge_worker.worker import open_model

    model = open_model(settings)
    model.prefill(model.render_prompt(_PROMPT))
    for _ in range(PROBE_TOKENS):
        model.feed(int(np.argmax(model.last_logits())))
    return model.name


def main() -> int:
    from edge_worker.model import ModelLoadError
    from sllm.logs import configure_logging
    from sllm.settings import LogSettings

    # Stdout carries the answer alone; llama.cpp's chatter (thousands of debug lines) stays out.
    configure_logging(LogSettings(level="warning", format="json"))
    settings = EdgeSettings.model_validate_json(sys.stdin.read())
    try:
        print(_decode(settings))
    except ModelLoadError as error:
        print(error, file=sys.stderr)
        return _LOAD_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
